#include "resumable/model/attention_kernel.h"

#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "resumable/model/model.h"
#include "toy_task.h"

using namespace resumable;

TEST(AttentionKernel, NamesParseBack) {
  for (auto k : {AttentionKernel::kFused, AttentionKernel::kMath})
    EXPECT_EQ(parse_attention_kernel(attention_kernel_name(k)), k);
  EXPECT_FALSE(parse_attention_kernel("flash").has_value());
}

TEST(AttentionKernel, MathComputesWhatTheFusedKernelDoesWithMaskOrCausal) {
  torch::manual_seed(3);
  auto q = torch::randn({3, 2, 5, 8}), k = torch::randn({3, 2, 5, 8}), v = torch::randn({3, 2, 5, 8});
  // Word lengths 5, 2 and 1: a key mask that hides padding, as the encoder's does.
  auto mask = torch::arange(5).lt(torch::tensor(std::vector<int64_t>{5, 2, 1}).unsqueeze(1)).view({3, 1, 1, 5});
  for (bool causal : {false, true}) {
    std::optional<torch::Tensor> m = causal ? std::nullopt : std::optional<torch::Tensor>(mask);
    auto fused = attention(AttentionKernel::kFused, q, k, v, m, causal);
    auto math = attention(AttentionKernel::kMath, q, k, v, m, causal);
    EXPECT_TRUE(torch::allclose(math, fused, 1e-5, 1e-6)) << "causal " << causal << ": "
                                                           << (math - fused).abs().max();
  }
  // And the mask matters: the third word's only key decides its whole output.
  auto masked = attention(AttentionKernel::kMath, q, k, v, mask, false);
  EXPECT_TRUE(torch::allclose(masked[2], v[2].select(1, 0).unsqueeze(1).expand({2, 5, 8})));
}

TEST(AttentionKernel, TheModelTrainsTheSameWithEitherKernel) {
  torch::manual_seed(4);
  ModelOptions o = small();
  o.dropout = 0;
  G2PTransformer m(o);
  auto [src, in, out] = task_batch(6, true);
  src.index_put_({0, torch::indexing::Slice(2)}, Vocabulary::kPad);  // a short word among them
  auto loss_and_grads = [&](AttentionKernel k) {
    m->set_attention_kernel(k);
    m->zero_grad();
    auto packed = m->forward_packed(src, in);
    auto loss = torch::nn::functional::cross_entropy(packed.logits, out.reshape({-1}).index_select(0, packed.index));
    loss.backward();
    std::vector<torch::Tensor> g{loss.detach()};
    for (auto& p : m->parameters()) g.push_back(p.grad().clone());
    return g;
  };
  auto fused = loss_and_grads(AttentionKernel::kFused);
  auto math = loss_and_grads(AttentionKernel::kMath);
  ASSERT_EQ(fused.size(), math.size());
  for (size_t i = 0; i < fused.size(); ++i)
    EXPECT_TRUE(torch::allclose(math[i], fused[i], 1e-4, 1e-5)) << "tensor " << i;
  EXPECT_FALSE(torch::equal(math[1], torch::zeros_like(math[1])));  // gradients did flow
}

TEST(AttentionKernel, TimingGivesMillisecondsAndLeavesTheRandomStreamAlone) {
  torch::manual_seed(9);
  auto expected = torch::rand({4});
  torch::manual_seed(9);
  for (auto k : {AttentionKernel::kFused, AttentionKernel::kMath}) {
    double ms = time_attention_ms(k, c10::Device(c10::kCPU), at::kFloat, 8, 2, 6, 4, 2);
    EXPECT_TRUE(std::isfinite(ms) && ms > 0) << ms;
  }
  EXPECT_TRUE(torch::equal(torch::rand({4}), expected));
}
