// When a checkpoint is due: the one place that decides, asked by the training loop after every
// step. Saves come every save_every_steps, after every save_every_epochs epochs, when
// save_every_minutes have passed since the last save (rank 0's clock, agreed on with the other
// ranks through the per-step allreduce), on a new best, at the end of training or --max-steps, and
// on a stop request. After a failed save, periodic saves back off: the next try waits 10 s, then
// 20 s, 40 s, ... up to 5 minutes, whatever the period says, so a storage hiccup of a few seconds
// costs one retry instead of ending the run within a few steps. --max-failed-saves counts failures in
// a row, each at least a backoff after the last: saves that must not wait (a new best) and fail
// while the backoff runs are the same outage.
#pragma once

#include <chrono>
#include <cstdint>

#include "resumable/config/config.h"

namespace resumable {

// What happened in the step just finished, as every rank agrees on it.
struct StepEvents {
  int64_t step = 0;           // global step now completed
  int64_t epoch = 0;          // epochs completed
  bool epoch_ended = false;
  bool new_best = false;      // the epoch's validation found a new best
  bool stop = false;          // a stop request (signal), or a validation it interrupted
  bool finished = false;      // the schedule or the epochs are done
  bool max_steps = false;     // --max-steps reached
  bool minutes_due = false;   // rank 0's clock: save_every_minutes passed, or a failed save's backoff
  bool backing_off = false;   // rank 0's clock: a failed save's backoff is still running
  bool deadline = false;      // rank 0's clock: the job's end leaves room for one more save only
};

struct SaveBackoff {
  double first_seconds = 10;    // after the first failure in a row
  double longest_seconds = 300;  // the doubling stops here
};

class SavePolicy {
 public:
  explicit SavePolicy(const TrainConfig& cfg, SaveBackoff backoff = {});

  // Why a save is due now ("stop signal", "deadline", "end of training", "max_steps", "new best",
  // "periodic"), or nullptr when none is.
  const char* reason(const StepEvents& e) const;
  // Rank 0's clock, for StepEvents::minutes_due: save_every_minutes since the last save, or once a
  // failed save's backoff has passed.
  bool minutes_due() const;
  // Rank 0's clock, for StepEvents::backing_off.
  bool backing_off() const;
  // A save finished: restarts the clock of save_every_minutes and ends a run of failures.
  void saved();
  // A save failed: the failures in a row so far. Periodic saves now wait for retry_seconds().
  // `same_outage`: the backoff was still running (StepEvents::backing_off, rank 0's clock as every
  // rank agreed on it, so all ranks count alike): the failure does not count again.
  int64_t failed(bool same_outage = false);
  // The backoff the last failure started (0 when the last save succeeded).
  double retry_seconds() const;
  int64_t failures() const { return failures_; }
  // Whether a save for `reason` may come a few steps late (while another is being written):
  // periodic ones may; a new best, a stop and the end may not.
  static bool can_wait(const char* reason);

 private:
  int64_t every_steps_, every_epochs_;
  double every_minutes_;
  SaveBackoff backoff_;
  std::chrono::steady_clock::time_point last_save_;
  int64_t failures_ = 0;  // in a row
  double retry_seconds_ = 0;
  std::chrono::steady_clock::time_point retry_at_;
};

}  // namespace resumable
