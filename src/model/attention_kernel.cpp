#include "resumable/model/attention_kernel.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/autograd.h>
#include <torch/cuda.h>

namespace resumable {

std::string attention_kernel_name(AttentionKernel k) { return k == AttentionKernel::kMath ? "math" : "fused"; }

std::optional<AttentionKernel> parse_attention_kernel(const std::string& name) {
  if (name == "fused") return AttentionKernel::kFused;
  if (name == "math") return AttentionKernel::kMath;
  return std::nullopt;
}

at::Tensor attention(AttentionKernel kernel, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const std::optional<at::Tensor>& mask, bool causal) {
  if (kernel == AttentionKernel::kFused) return at::scaled_dot_product_attention(q, k, v, mask, 0.0, causal);
  // Scaling the scores rather than q: a word is shorter than a head is wide, so they are the
  // smaller tensor.
  auto scores = at::matmul(q, k.transpose(-2, -1)).mul(1.0 / std::sqrt(static_cast<double>(q.size(-1))));
  const double minus_inf = -std::numeric_limits<double>::infinity();
  if (causal) {
    auto future = at::ones({q.size(-2), k.size(-2)}, q.options().dtype(at::kBool)).triu(1);
    scores = scores.masked_fill(future, minus_inf);
  }
  if (mask) scores = scores.masked_fill(mask->logical_not(), minus_inf);
  return at::matmul(at::softmax(scores, -1, at::kFloat).to(v.scalar_type()), v);
}

double time_attention_ms(AttentionKernel kernel, c10::Device device, c10::ScalarType dtype, int64_t batch,
                         int64_t heads, int64_t length, int64_t head_dim, int repeats) {
  auto options = at::TensorOptions().device(device).dtype(dtype);
  // Drawn from a generator of its own: timing must not move the training's random streams.
  at::Generator gen = at::detail::createCPUGenerator(0x617474);
  auto input = [&] {
    auto x = at::randn({batch, heads, length, head_dim}, gen, at::TensorOptions(at::kFloat));
    return x.to(options).requires_grad_(true);
  };
  at::Tensor q = input(), k = input(), v = input();
  // Words of every length up to `length`, as a random batch holds them.
  auto lengths = at::arange(batch, options.dtype(at::kLong)).remainder(length).add(1);
  auto mask = at::arange(length, options.dtype(at::kLong)).lt(lengths.unsqueeze(1)).view({batch, 1, 1, length});
  auto grad = at::ones({batch, heads, length, head_dim}, options);
  auto sync = [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
  };
  auto once = [&] {
    for (bool causal : {false, true}) {
      auto y = attention(kernel, q, k, v, causal ? std::nullopt : std::optional<at::Tensor>(mask), causal);
      torch::autograd::backward({y}, {grad});
    }
  };
  once();  // first calls pick algorithms and allocate
  sync();
  std::vector<double> ms;
  for (int i = 0; i < std::max(1, repeats); ++i) {
    auto start = std::chrono::steady_clock::now();
    once();
    sync();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
  return ms[ms.size() / 2];
}

}  // namespace resumable
