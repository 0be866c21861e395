#include "resumable/training/save_policy.h"

#include <algorithm>
#include <cmath>
#include <string_view>

namespace resumable {
namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

SavePolicy::SavePolicy(const TrainConfig& cfg, SaveBackoff backoff)
    : every_steps_(cfg.save_every_steps),
      every_epochs_(cfg.save_every_epochs),
      every_minutes_(cfg.save_every_minutes),
      backoff_(backoff),
      last_save_(Clock::now()) {}

const char* SavePolicy::reason(const StepEvents& e) const {
  if (e.stop) return "stop signal";
  if (e.deadline) return "deadline";
  if (e.finished) return "end of training";
  if (e.max_steps) return "max_steps";
  if (e.new_best) return "new best";
  if (e.backing_off) return nullptr;  // the storage gets its time to recover, whatever the period says
  bool periodic = e.minutes_due || (every_steps_ > 0 && e.step % every_steps_ == 0) ||
                  (e.epoch_ended && every_epochs_ > 0 && e.epoch % every_epochs_ == 0);
  return periodic ? "periodic" : nullptr;
}

bool SavePolicy::minutes_due() const {
  if (failures_ > 0) return !backing_off();
  return every_minutes_ > 0 && seconds_since(last_save_) >= every_minutes_ * 60;
}

bool SavePolicy::backing_off() const { return failures_ > 0 && Clock::now() < retry_at_; }

void SavePolicy::saved() {
  last_save_ = Clock::now();
  failures_ = 0;
  retry_seconds_ = 0;
}

int64_t SavePolicy::failed(bool same_outage) {
  // A save that fails while the backoff runs (a new best, which may not wait) meets the same
  // outage: failures count over time, not per save attempted.
  if (same_outage && failures_ > 0) return failures_;
  ++failures_;
  retry_seconds_ = std::min(backoff_.longest_seconds,
                            backoff_.first_seconds * std::pow(2.0, static_cast<double>(std::min<int64_t>(failures_, 40) - 1)));
  retry_at_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(retry_seconds_));
  return failures_;
}

double SavePolicy::retry_seconds() const { return retry_seconds_; }

bool SavePolicy::can_wait(const char* reason) { return reason && std::string_view(reason) == "periodic"; }

}  // namespace resumable
