// The checkpoints of one run, in RUN_DIR/checkpoints/:
//   last.pt                 the newest checkpoint, replaced atomically on every save
//   best.pt                 the one with the best validation metric so far
//   step-00001234.pt        numbered snapshots, pruned by the retention policy
// A save writes the bytes once and publishes them under each name (hard links where the file
// system has them), last.pt first. Files are ordered by what they say (their meta record: the
// launch segment, then the step), never by the file system's clock. Pruning touches numbered
// snapshots only, never the one just written, and never a file whose record cannot be read.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "resumable/checkpoint/checkpoint_file.h"

namespace resumable {

struct RetentionPolicy {
  int64_t keep_last = 3;   // newest numbered snapshots kept
  int64_t keep_every = 0;  // also keep snapshots whose step is a multiple of this (0 = off)
};

// A new best whose save failed: its state is kept (in memory, on rank 0) and written with the next
// save, so that best.pt always holds the step that last.pt calls best.
struct PendingBest {
  c10::IValue state;
  CheckpointMeta meta;
};

struct SaveReport {
  WrittenCheckpoint written;
  bool best_published = false;        // best.pt now holds the run's best
  std::vector<std::string> paths;     // the names it was published under (last.pt first)
  std::vector<std::string> problems;  // what went wrong after last.pt was in place
  std::vector<std::string> pruned;    // snapshots deleted by retention
  std::vector<std::string> freed;     // snapshots deleted early to make room on a full disk
};

// A file of the checkpoint directory as its meta record describes it.
struct CheckpointFile {
  std::string path;
  std::optional<CheckpointMeta> meta;  // nullopt: no record (older trainer) or unreadable
  std::string problem;                 // why the record could not be read, if it could not

  int64_t segment() const { return meta ? meta->segment : 0; }
  int64_t step() const;  // from the record, else from a step-N.pt name, else -1
};

class CheckpointManager {
 public:
  CheckpointManager(std::string dir, RetentionPolicy retention);

  const std::string& dir() const { return dir_; }
  std::string last_path() const { return dir_ + "/last.pt"; }
  std::string best_path() const { return dir_ + "/best.pt"; }
  std::string step_path(int64_t step) const;

  // Creates the directory (durably) and deletes temporaries left by a writer that was killed.
  // Call it only under the run directory's lock.
  void prepare();
  // Writes `state` as last.pt, best.pt (when `is_best`) and step-N.pt, then prunes. Throws
  // SaveError while last.pt is not replaced; failures after that are in the report. On a full disk
  // (ENOSPC, EDQUOT) it first deletes the snapshots this save's pruning would delete anyway and
  // tries once more. An `earlier_best` (not with `is_best`) is written first as its step-N.pt and
  // linked as best.pt last, so that a crash in between leaves its snapshot to mend best.pt from.
  SaveReport save(const c10::IValue& state, const CheckpointMeta& meta, bool is_best,
                  const PendingBest* earlier_best = nullptr);

  // Numbered snapshots, newest first.
  std::vector<CheckpointFile> snapshots() const;
  bool has_checkpoints() const;
  // Where to look for the newest good checkpoint: last.pt, then the snapshots and best.pt, newest
  // first (best.pt after a snapshot it equals). A file whose record cannot be read comes before
  // all the others: it may be the newest, so the search must meet it (and stop, unless damaged)
  // before it falls back to anything older.
  std::vector<CheckpointFile> candidates() const;
  // The highest launch segment of any file here (0 when none has one).
  int64_t highest_segment() const;
  // The first candidate that `accept`s (all by default), reads, verifies and passes `check`
  // (which throws CheckpointError). Damaged files are skipped with their problem in `skipped`;
  // any other error (the file system refused, a newer format) is thrown: the run must stop rather
  // than fall back past a file that may be good.
  std::optional<LoadedCheckpoint> load_newest_good(
      std::vector<std::string>& skipped, const std::function<void(const LoadedCheckpoint&)>& check = nullptr,
      const std::function<bool(const CheckpointFile&)>& accept = nullptr) const;
  // Applies the retention policy; never deletes the snapshot of `newest_step`. With `room_for_one`
  // it counts a snapshot about to be written (keeps one fewer).
  std::vector<std::string> prune(int64_t newest_step, bool room_for_one = false);
  // What prune() would delete now (`ckpt clean --dry-run`).
  std::vector<std::string> prunable(int64_t newest_step, bool room_for_one = false) const;
  // Moves the checkpoint directory aside (--resume never --force); returns its new name.
  std::string set_aside();
  // The name set_aside() would move it to now ("checkpoints.old-YYYYMMDD-HHMMSS"; --dry-run).
  std::string set_aside_target() const;

 private:
  std::string dir_;
  RetentionPolicy retention_;
};

}  // namespace resumable
