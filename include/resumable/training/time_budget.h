// --time-budget-minutes: the number of epochs fitted to a wall-clock budget, so that the LR
// schedule decays to its end just as the time runs out. A run stopped by a clock instead (a kill,
// --max-steps) ends mid-decay, at a higher LR and a worse model; a guessed --epochs ends early or
// late. The rate is measured, not guessed, and the fit is made again at every epoch end, since
// the first epochs run slower (new sequence shapes, allocator growth) than the rest.
//
// Pure arithmetic on the times it is given: the Trainer feeds it rank 0's clock and shares the
// result, and the fitted epochs live in the train state, so a resume continues the same plan.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace resumable {

class TimeBudget {
 public:
  explicit TimeBudget(double budget_seconds) : budget_(budget_seconds) {}

  struct EpochEnd {
    int64_t epochs_done = 0;     // completed epochs
    int64_t step = 0;            // global step
    double now = 0;              // seconds on a steady clock
    double used = 0;             // seconds of the budget spent so far, earlier invocations included
    double reserve = 0;          // what the end needs after the last step: a validation and a save
    int64_t steps_per_epoch = 1;
    int64_t planned_epochs = 0;  // the current fit (0: none yet)
    bool warmed_up = false;      // the LR warmup is over: its steps are not typical of the rest
  };
  struct Fit {
    int64_t epochs = 0;             // the run's total
    double seconds_per_epoch = 0;   // as measured
    double seconds_left = 0;        // for training, after the reserve
  };

  // The epochs that fill the budget (at least one more, whatever the clock says), or nullopt:
  // - too little measured yet: it needs two epoch ends after the warmup, in this invocation;
  // - 90% of the budget spent with a fit made: the end is settled, and a re-fit there could only
  //   jitter it (a run not fitted yet is fitted whenever: it has no end without one);
  // - within 1% of the planned epochs: each re-fit bends the LR curve, and the clock's noise
  //   alone would move a long run's end by an epoch either way.
  std::optional<Fit> at_epoch_end(const EpochEnd& e);

  // The share of the budget after which the epochs stay as they are.
  static constexpr double kSettled = 0.9;

 private:
  double budget_;
  std::vector<std::pair<int64_t, double>> marks_;  // (step, time) at the epoch ends since the warmup
};

}  // namespace resumable
