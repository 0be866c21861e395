// The optimizer step in a handful of multi-tensor (foreach) kernels instead of ~10 per parameter.
// On a GPU a step of this small model is bound by kernel launches (about 50 ms on an H100, where
// libtorch's AdamW launched ~1,000 kernels and its gradient clipping ~250 plus a host sync); the
// foreach ops launch a few per step, as PyTorch's own AdamW and clip_grad_norm_ do by default.
#pragma once

#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/optim/adamw.h>

namespace resumable {

// torch::optim::AdamW with the same arithmetic, the same state (AdamWParamState: step, exp_avg,
// exp_avg_sq, so checkpoints are unchanged) and, on the CPU, the very same results, bit for bit:
// there the foreach ops run the per-tensor ops in a loop. amsgrad is not supported.
class ForeachAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  at::Tensor step(LossClosure closure = nullptr) override;
};

// Scales `grads` in place so that their joint L2 norm is at most `max_norm`, as
// torch.nn.utils.clip_grad_norm_ (foreach) does; returns the norm before clipping as a tensor,
// so that the step need not wait for the device.
at::Tensor clip_grad_norm(const std::vector<at::Tensor>& grads, double max_norm);

}  // namespace resumable
