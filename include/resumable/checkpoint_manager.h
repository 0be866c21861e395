// The checkpoints of one run, in RUN_DIR/checkpoints/:
//   last.pt                 the newest checkpoint, replaced atomically on every save
//   best.pt                 the one with the best validation metric so far
//   step-00001234.pt        numbered snapshots, pruned by the retention policy
// A save writes the bytes once and publishes them under each name (hard links where the file
// system has them), last.pt first. Pruning touches numbered snapshots only, never the newest
// one, and runs only after a save succeeded, so it can never remove the only good checkpoint.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "resumable/checkpoint_file.h"

namespace resumable {

struct RetentionPolicy {
  int64_t keep_last = 3;   // newest numbered snapshots kept
  int64_t keep_every = 0;  // also keep snapshots whose step is a multiple of this (0 = off)
};

struct SaveReport {
  WrittenCheckpoint written;
  std::vector<std::string> paths;   // the names it was published under
  std::vector<std::string> pruned;  // snapshots deleted by retention
};

class CheckpointManager {
 public:
  CheckpointManager(std::string dir, RetentionPolicy retention);

  const std::string& dir() const { return dir_; }
  std::string last_path() const { return dir_ + "/last.pt"; }
  std::string best_path() const { return dir_ + "/best.pt"; }
  std::string step_path(int64_t step) const;

  // Creates the directory and deletes temporaries left by a writer that was killed.
  void prepare();
  // Writes `state` as step-N.pt and last.pt (and best.pt), then prunes. Throws SaveError.
  SaveReport save(const c10::IValue& state, int64_t step, bool is_best);

  // Numbered snapshots as (step, path), most recently written first.
  std::vector<std::pair<int64_t, std::string>> snapshots() const;
  bool has_checkpoints() const;
  // Where to look for the newest good checkpoint: last.pt, then snapshots and best.pt by write time.
  std::vector<std::string> candidates() const;
  // The first candidate that reads, verifies and passes `check` (which throws CheckpointError);
  // the problems of those skipped land in `skipped`.
  std::optional<LoadedCheckpoint> load_newest_good(
      std::vector<std::string>& skipped, const std::function<void(const LoadedCheckpoint&)>& check = nullptr) const;
  // Applies the retention policy; never deletes the snapshot of `newest_step`.
  std::vector<std::string> prune(int64_t newest_step);
  // Moves the checkpoint directory aside (--resume never --force); returns its new name.
  std::string set_aside();

 private:
  std::string dir_;
  RetentionPolicy retention_;
};

}  // namespace resumable
