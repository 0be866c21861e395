// When a checkpoint is due: the one place that decides, asked by the training loop after every
// step. Saves come every save_every_steps, after every save_every_epochs epochs, when
// save_every_minutes have passed since the last save (rank 0's clock, agreed on with the other
// ranks through the per-step allreduce), on a new best, at the end of training or --max-steps, and
// on a stop request.
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
  bool minutes_due = false;   // rank 0's clock: save_every_minutes passed
  bool deadline = false;      // rank 0's clock: the job's end leaves room for one more save only
};

class SavePolicy {
 public:
  explicit SavePolicy(const TrainConfig& cfg);

  // Why a save is due now ("stop signal", "deadline", "end of training", "max_steps", "new best",
  // "periodic"), or nullptr when none is.
  const char* reason(const StepEvents& e) const;
  // Rank 0's clock, for StepEvents::minutes_due.
  bool minutes_due() const;
  // A save finished (restarts the clock of save_every_minutes).
  void saved();
  // Whether a save for `reason` may come a few steps late (while another is being written):
  // periodic ones may; a new best, a stop and the end may not.
  static bool can_wait(const char* reason);

 private:
  int64_t every_steps_, every_epochs_;
  double every_minutes_;
  std::chrono::steady_clock::time_point last_save_;
};

}  // namespace resumable
