// Everything between "a save is due" (SavePolicy) and "write these bytes" (CheckpointManager): the
// one owner of a run's saving. It builds rank 0's snapshot, runs at most one background write,
// defers a periodic save that comes due while one is being written, counts failed saves, keeps a
// new best whose own save failed until a later save publishes it, and mends best.pt on resume.
// The training loop talks to it at four points of a step:
//   local_flags()            rank 0's part of the step's allreduce (a finished background write,
//                            the clock of save_every_minutes and of the failure backoff)
//   before_optimizer_step()  a background snapshot must be copied before the weights change
//   after_step()             the step's agreed events and flags: save, defer, or give up
//   close()                  at the end, on every exit path: the background write finishes
//                            (and is reported) before the run directory's lock is released
// Every decision that changes what the ranks do next (save now, give up) is taken from agreed
// values only, so all ranks take it at the same step.
#pragma once

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "resumable/checkpoint/checkpoint_manager.h"
#include "resumable/config/config.h"
#include "resumable/training/deadline.h"
#include "resumable/training/save_policy.h"
#include "resumable/training/train_state.h"

namespace resumable {

class Distributed;
class SnapshotArena;

// What a save takes from the run; the Trainer provides it.
struct SaveSource {
  // Collective, the start of every save: checks that the replicas agree and gathers what every
  // rank contributes (its RNG streams). Returns the weights' digest, for the log.
  std::function<std::string()> prepare;
  // Rank 0: the checkpoint's state. On the CPU it aliases the live tensors. `with_probe`: whether
  // the resume proof's probe loss is computed now (false: left to `probe`, or saved without).
  std::function<c10::IValue(bool with_probe)> build;
  // Rank 0's writer thread: fills the probe loss into a snapshot (empty: `build` computes it).
  std::function<void(c10::IValue& snapshot)> probe;
};

// Rank 0's flags in the step's allreduce (false elsewhere); after it, their sum over the ranks,
// the same on every rank.
struct SaveFlags {
  bool minutes_due = false;        // save_every_minutes have passed, or a failed save's backoff
  bool backing_off = false;        // a failed save's backoff is still running
  bool in_flight = false;          // a background write is still running: a new save waits for it
  bool background_saved = false;   // a background write finished since the last step...
  bool background_failed = false;  // ...or failed
};

struct SaveCoordinatorOptions {
  bool on_gpu = false;         // state dicts are copies already (made on the CPU)
  int64_t segment = 0;         // this launch's number, for every file's record
  std::vector<CheckpointAncestor> resumed_from;  // the checkpoints it resumed from, likewise
  double state_bytes = 0;      // the model and AdamW's two moments: the first save's guessed size
  double read_seconds = 0;     // what reading the resumed checkpoint took (a save takes as long)
};

class SaveCoordinator {
 public:
  SaveCoordinator(const TrainConfig& cfg, Distributed& dist, const TrainState& state, SaveSource source,
                  SaveCoordinatorOptions options);
  ~SaveCoordinator();  // close()
  SaveCoordinator(const SaveCoordinator&) = delete;
  SaveCoordinator& operator=(const SaveCoordinator&) = delete;

  // Rank 0, under the run directory's lock, before training: the checkpoint directory, and after
  // a resume best.pt mended to hold the step the checkpoint calls best.
  void prepare_directory(const LoadedCheckpoint* resumed);
  // Rank 0, when training starts: background saves get their memory ready beside the first steps.
  void begin_training();

  // A validation found a new best (every rank): the next save publishes it as best.pt.
  void note_new_best();
  SaveFlags local_flags();
  void before_optimizer_step();
  // Collective. `ev` holds the agreed flags too (minutes_due, backing_off). False: too many saves
  // failed in a row; the run must stop (exit 74), the last good checkpoint untouched.
  bool after_step(const StepEvents& ev, const SaveFlags& agreed);
  enum class Outcome { kSaved, kFailed, kGiveUp };
  // Collective: a synchronous save now (after a pending validation), failures counted.
  Outcome save_now(const char* reason);
  // Rank 0: what the next save will take, as measured (or guessed before any).
  double expected_save_seconds() const;
  // Rank 0, on every way out: waits for a background write and reports its outcome. Not collective.
  void close();
  // Any one rank, alone, holding the run directory's lock, after another rank was lost: writes this
  // rank's state (complete at the step it is at) as a checkpoint marked with `failure`, unless
  // last.pt of this launch holds that step or a later one already (another survivor's save).
  // Returns the step last.pt now holds, or nullopt when the save failed.
  std::optional<int64_t> save_alone(const std::string& failure);

 private:
  struct Job;
  // Rank 0's part of a save: "S" (saved), "B" (snapshot taken, writing in the background) or
  // "F" + why. Never throws.
  std::string write_on_main(const char* reason, const std::string& weights, bool background);
  SaveReport write(const Job& job);
  // Rank 0, training thread: takes the write's result, updates best.pt's bookkeeping and logs.
  std::string finish(Job& job, const std::function<SaveReport()>& result);
  void start_background(const char* reason);
  bool save_synchronously(const char* reason);
  void poll_background();
  std::string drain_background();  // collective: "S", "F" + why, or "" when none was in flight
  bool count_failure(bool same_outage);  // true: give up
  void keep_pending_best(Job& job);

  const TrainConfig& cfg_;
  Distributed& dist_;
  const TrainState& state_;
  SaveSource source_;
  SaveCoordinatorOptions options_;
  CheckpointManager checkpoints_;
  SavePolicy policy_;
  MovingMax save_seconds_{5};
  std::chrono::steady_clock::time_point save_started_;  // the save in progress, training thread

  bool best_unpublished_ = false;  // best.pt does not hold the best step yet (new, or its save failed)
  std::optional<PendingBest> pending_best_;  // rank 0: that best's state, when its own save failed
  const char* deferred_ = nullptr;           // a periodic save that came due while one was in flight
  std::string after_failure_;                // save_alone(): the failure, for the file's record
  std::optional<bool> unreported_;           // rank 0: a background save's outcome, for the next step
  // Rank 0: the memory background saves copy into, made (and faulted in) beside the first steps.
  std::shared_ptr<SnapshotArena> arena_;
  std::future<std::shared_ptr<SnapshotArena>> arena_ready_;
  // Rank 0's background save, at most one. Last member: destroyed first.
  std::unique_ptr<Job> in_flight_;
};

}  // namespace resumable
