#include "resumable/training/save_policy.h"

#include <string_view>

namespace resumable {

SavePolicy::SavePolicy(const TrainConfig& cfg)
    : every_steps_(cfg.save_every_steps),
      every_epochs_(cfg.save_every_epochs),
      every_minutes_(cfg.save_every_minutes),
      last_save_(std::chrono::steady_clock::now()) {}

const char* SavePolicy::reason(const StepEvents& e) const {
  if (e.stop) return "stop signal";
  if (e.deadline) return "deadline";
  if (e.finished) return "end of training";
  if (e.max_steps) return "max_steps";
  if (e.new_best) return "new best";
  bool periodic = e.minutes_due || (every_steps_ > 0 && e.step % every_steps_ == 0) ||
                  (e.epoch_ended && every_epochs_ > 0 && e.epoch % every_epochs_ == 0);
  return periodic ? "periodic" : nullptr;
}

bool SavePolicy::minutes_due() const {
  return every_minutes_ > 0 &&
         std::chrono::duration<double>(std::chrono::steady_clock::now() - last_save_).count() >= every_minutes_ * 60;
}

void SavePolicy::saved() { last_save_ = std::chrono::steady_clock::now(); }

bool SavePolicy::can_wait(const char* reason) { return reason && std::string_view(reason) == "periodic"; }

}  // namespace resumable
