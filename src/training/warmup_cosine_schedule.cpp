#include "resumable/training/warmup_cosine_schedule.h"

#include <algorithm>
#include <cmath>

namespace resumable {
namespace {

double cosine(double from, double to, int64_t step, int64_t start, int64_t end) {
  if (step >= end || end <= start) return to;
  double progress = static_cast<double>(step - start) / static_cast<double>(end - start);
  return to + (from - to) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

}  // namespace

double WarmupCosineSchedule::phase_at(int64_t step) const {
  const ScheduleState& s = state_;
  const bool anchored = s.anchor_step >= 0 && step >= s.anchor_step;
  const int64_t start = anchored ? s.anchor_step : s.warmup_steps;
  const double from = anchored ? s.anchor_phase : 0.0;
  if (step >= s.total_steps || s.total_steps <= start) return M_PI;
  return from + (M_PI - from) * static_cast<double>(step - start) / static_cast<double>(s.total_steps - start);
}

double WarmupCosineSchedule::lr_at(int64_t step) const {
  const ScheduleState& s = state_;
  if (s.anchor_step >= 0 && step >= s.anchor_step) {
    if (s.anchor_phase <= 0) return cosine(s.anchor_lr, s.min_lr, step, s.anchor_step, s.total_steps);
    // The cosine whose value at the anchor's phase is anchor_lr.
    const double at_anchor = 0.5 * (1.0 + std::cos(s.anchor_phase));
    if (at_anchor < 1e-12) return s.min_lr;
    return s.min_lr + (s.anchor_lr - s.min_lr) / at_anchor * 0.5 * (1.0 + std::cos(phase_at(step)));
  }
  // Warmup counts from 1 so the first step already learns (PyTorch's LinearLR convention).
  if (step < s.warmup_steps) return s.max_lr * static_cast<double>(step + 1) / static_cast<double>(s.warmup_steps);
  return cosine(s.max_lr, s.min_lr, step, s.warmup_steps, s.total_steps);
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
