// How the model computes attention: `fused` hands it to at::scaled_dot_product_attention (flash
// on the CPU; cuDNN's fused kernel on an H100/H200), `math` spells it out as two batched matmuls
// and a softmax. Both compute the same function. They differ in speed: a fused kernel gives each
// (word, head) pair its own tile of 64-128 query rows, while a word here is 8 tokens on average
// and 34 at most, so on a GPU most of each tile is empty; on the CPU, flash attention wins.
// `auto` therefore keeps fused on the CPU and times the two on the GPU, at the training shapes.
#pragma once

#include <optional>
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace resumable {

enum class AttentionKernel { kFused, kMath };

std::string attention_kernel_name(AttentionKernel k);                       // "fused" | "math"
std::optional<AttentionKernel> parse_attention_kernel(const std::string& name);  // nullopt if neither

// q [B,H,Tq,E], k and v [B,H,Tk,E]; mask [B,1,1,Tk] bool (true = attend) or none. The math
// kernel takes its softmax in fp32 whatever the inputs' dtype, as the fused kernels do.
at::Tensor attention(AttentionKernel kernel, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const std::optional<at::Tensor>& mask, bool causal);

// Milliseconds of one forward and backward of both kinds of attention the model runs (an encoder
// self-attention with a key mask, a causal decoder self-attention) on random [B,H,T,E] inputs
// of `dtype` on `device`, the median of `repeats` after a warm-up.
double time_attention_ms(AttentionKernel kernel, c10::Device device, c10::ScalarType dtype, int64_t batch,
                         int64_t heads, int64_t length, int64_t head_dim, int repeats = 5);

}  // namespace resumable
