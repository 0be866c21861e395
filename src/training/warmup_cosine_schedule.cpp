#include "resumable/training/warmup_cosine_schedule.h"

#include <algorithm>
#include <cmath>

namespace resumable {

double WarmupCosineSchedule::phase_at(int64_t step) const {
  const ScheduleState& s = state_;
  const bool anchored = s.anchor_step >= 0 && step >= s.anchor_step;
  const int64_t start = anchored ? s.anchor_step : s.warmup_steps;
  const double from = anchored ? s.anchor_phase : 0.0;
  if (step >= s.total_steps || s.total_steps <= start) return M_PI;
  const double progress = static_cast<double>(step - start) / static_cast<double>(s.total_steps - start);
  return from + (M_PI - from) * progress;
}

double WarmupCosineSchedule::lr_at(int64_t step) const {
  const ScheduleState& s = state_;
  const bool anchored = s.anchor_step >= 0 && step >= s.anchor_step;
  // Warmup counts from 1 so the first step already learns (PyTorch's LinearLR convention).
  if (!anchored && step < s.warmup_steps)
    return s.max_lr * static_cast<double>(step + 1) / static_cast<double>(s.warmup_steps);
  // The cosine that has the value `top` at phase `phase0`: max_lr at 0 after the warmup, or the
  // anchor's LR at the anchor's phase (0 for a re-plan: a fresh cosine from that LR).
  const double top = anchored ? s.anchor_lr : s.max_lr;
  const double at_top = anchored ? 0.5 * (1.0 + std::cos(s.anchor_phase)) : 1.0;
  if (at_top < 1e-12) return s.min_lr;
  return s.min_lr + (top - s.min_lr) / at_top * 0.5 * (1.0 + std::cos(phase_at(step)));
}

void WarmupCosineSchedule::replan_total(int64_t new_total) {
  if (new_total == state_.total_steps) return;
  if (state_.step < state_.warmup_steps && state_.anchor_step < 0) {
    // Still warming up: the warmup does not depend on the end, so only the end moves.
    state_.total_steps = new_total;
    return;
  }
  state_.anchor_lr = current_lr();
  state_.anchor_step = state_.step;
  state_.anchor_phase = 0;
  state_.total_steps = std::max(new_total, state_.step);
}

void WarmupCosineSchedule::stretch_total(int64_t new_total) {
  if (new_total == state_.total_steps) return;
  if (state_.step < state_.warmup_steps && state_.anchor_step < 0) {
    state_.total_steps = new_total;
    return;
  }
  const double lr = current_lr(), phase = phase_at(state_.step);
  state_.anchor_lr = lr;
  state_.anchor_phase = phase;
  state_.anchor_step = state_.step;
  state_.total_steps = std::max(new_total, state_.step);
}

void WarmupCosineSchedule::rescale_lr(double new_max_lr, double new_min_lr) {
  if (state_.max_lr > 0) state_.anchor_lr *= new_max_lr / state_.max_lr;
  state_.max_lr = new_max_lr;
  state_.min_lr = new_min_lr;
}

}  // namespace resumable
