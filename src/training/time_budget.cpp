#include "resumable/training/time_budget.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace resumable {

std::optional<TimeBudget::Fit> TimeBudget::at_epoch_end(const EpochEnd& e) {
  if (!e.warmed_up) return std::nullopt;
  marks_.emplace_back(e.step, e.now);
  // Settled once 90% is spent, but never without an end: a run not fitted yet gets one whenever.
  if (marks_.size() < 2 || (e.planned_epochs > 0 && e.used >= kSettled * budget_)) return std::nullopt;
  // The later half of the epochs measured: the slow first ones drop out as the run goes on, and
  // validations and saves stay inside the window, as they will be in the epochs to come.
  const auto& from = marks_[(marks_.size() - 1) / 2];
  if (e.step <= from.first || e.now <= from.second) return std::nullopt;
  Fit f;
  f.seconds_per_epoch = (e.now - from.second) / static_cast<double>(e.step - from.first) *
                        static_cast<double>(std::max<int64_t>(1, e.steps_per_epoch));
  f.seconds_left = budget_ - e.used - e.reserve;
  const double more = std::floor(f.seconds_left / f.seconds_per_epoch);
  f.epochs = e.epochs_done + std::max<int64_t>(1, static_cast<int64_t>(std::min(more, 1e9)));
  if (e.planned_epochs > 0 && std::abs(f.epochs - e.planned_epochs) <= e.planned_epochs / 100) return std::nullopt;
  return f;
}

}  // namespace resumable
