#include "resumable/training/loss_scaler.h"

#include <ATen/ATen.h>

namespace resumable {

at::Tensor LossScaler::scale(const at::Tensor& loss) const {
  return state_.enabled ? loss * state_.scale : loss;
}

bool LossScaler::unscale(std::vector<at::Tensor>& grads) const {
  if (!state_.enabled || grads.empty()) return true;
  auto found_inf = at::zeros({1}, grads.front().options().dtype(at::kFloat));
  auto inv_scale = at::full({1}, 1.0 / state_.scale, grads.front().options().dtype(at::kFloat));
  at::_amp_foreach_non_finite_check_and_unscale_(grads, found_inf, inv_scale);
  return found_inf.item<float>() == 0.0f;
}

void LossScaler::update(bool found_inf) {
  if (!state_.enabled) return;
  if (found_inf) {
    state_.scale *= state_.backoff_factor;
    state_.growth_tracker = 0;
    ++state_.skipped_steps;
  } else if (++state_.growth_tracker >= state_.growth_interval) {
    state_.scale *= state_.growth_factor;
    state_.growth_tracker = 0;
  }
}

}  // namespace resumable
