// Linear warmup to max_lr, then cosine decay to min_lr at total_steps; a pure function of the step.
// When a resumed run is longer or shorter than planned (more epochs, another batch size), the
// decay is re-planned: from the current step, cosine from the current LR down to min_lr at the new
// end. A time budget's re-fits instead stretch (or squeeze) the rest of the cosine from its
// current phase: made every epoch, a fresh cosine each time would stay flat at every start and
// keep the LR high until a steep drop at the end. Either way the LR curve stays continuous and the
// state stays a handful of numbers.
#pragma once

#include <cstdint>

namespace resumable {

struct ScheduleState {
  int64_t warmup_steps = 0;  // steps of linear warmup from ~0 to max_lr
  int64_t total_steps = 1;   // step at which the LR reaches min_lr
  double max_lr = 1e-3;
  double min_lr = 0;
  int64_t step = 0;          // optimizer steps taken so far
  int64_t anchor_step = -1;  // re-plan point: decay restarts here from anchor_lr (-1 = never re-planned)
  double anchor_lr = 0;
  double anchor_phase = 0;   // the cosine's phase at the anchor, 0..pi (0: a fresh cosine from anchor_lr)

  template <class Visitor>
  void visit(Visitor&& v) {
    v("warmup_steps", warmup_steps);
    v("total_steps", total_steps);
    v("max_lr", max_lr);
    v("min_lr", min_lr);
    v("step", step);
    v("anchor_step", anchor_step);
    v("anchor_lr", anchor_lr);
    v("anchor_phase", anchor_phase, 0.0);  // version 2
  }
};

class WarmupCosineSchedule {
 public:
  WarmupCosineSchedule() = default;
  explicit WarmupCosineSchedule(ScheduleState s) : state_(s) {}

  // LR to use for the optimizer step numbered `step` (0-based: the first step is 0).
  double lr_at(int64_t step) const;
  double current_lr() const { return lr_at(state_.step); }
  void advance() { ++state_.step; }

  // Makes the decay end at `new_total` instead, continuing from the current step and LR.
  void replan_total(int64_t new_total);
  // Makes the decay end at `new_total`, the rest of the cosine continuing from its current phase.
  void stretch_total(int64_t new_total);
  // A new peak LR (fine-tuning or a changed config): the whole curve is scaled by new/old.
  void rescale_lr(double new_max_lr, double new_min_lr);

  const ScheduleState& state() const { return state_; }
  void load_state(const ScheduleState& s) { state_ = s; }

 private:
  double phase_at(int64_t step) const;  // of the decay, 0..pi
  ScheduleState state_;
};

}  // namespace resumable
