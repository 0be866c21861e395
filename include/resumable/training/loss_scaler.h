// Dynamic loss scaling for fp16 mixed precision (PyTorch's GradScaler): multiply the loss so small
// gradients survive fp16, unscale before clipping, skip the step when a gradient overflowed and
// back off; grow the scale after `growth_interval` clean steps. Its state is checkpointed, so a
// resumed fp16 run continues with the same scale. Disabled (scale 1, never skips) otherwise.
#pragma once

#include <vector>

#include <ATen/core/Tensor.h>

namespace resumable {

struct LossScalerState {
  bool enabled = false;
  double scale = 65536.0;
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
  int64_t growth_tracker = 0;  // clean steps since the last change of scale
  int64_t skipped_steps = 0;   // steps skipped for inf/nan gradients, over the whole run

  template <class Visitor>
  void visit(Visitor&& v) {
    v("enabled", enabled);
    v("scale", scale);
    v("growth_factor", growth_factor);
    v("backoff_factor", backoff_factor);
    v("growth_interval", growth_interval);
    v("growth_tracker", growth_tracker);
    v("skipped_steps", skipped_steps);
  }
};

class LossScaler {
 public:
  explicit LossScaler(bool enabled = false) { state_.enabled = enabled; }

  at::Tensor scale(const at::Tensor& loss) const;
  // Divides the gradients by the scale in place; returns false when any is inf or nan.
  bool unscale(std::vector<at::Tensor>& grads) const;
  // After each step: found_inf=true means the step was skipped.
  void update(bool found_inf);

  bool enabled() const { return state_.enabled; }
  const LossScalerState& state() const { return state_; }
  void load_state(const LossScalerState& s) { state_ = s; }

 private:
  LossScalerState state_;
};

}  // namespace resumable
