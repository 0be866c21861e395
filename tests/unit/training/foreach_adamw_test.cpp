#include "resumable/training/foreach_adamw.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

using namespace resumable;

namespace {

std::vector<torch::Tensor> make_params() {
  torch::manual_seed(7);
  std::vector<torch::Tensor> ps;
  for (auto shape : {std::vector<int64_t>{16, 8}, {8}, {3, 5, 2}, {1}})
    ps.push_back(torch::randn(shape).requires_grad_(true));
  return ps;
}

std::vector<torch::Tensor> clones(const std::vector<torch::Tensor>& ps) {
  std::vector<torch::Tensor> out;
  for (const auto& p : ps) out.push_back(p.detach().clone().requires_grad_(true));
  return out;
}

torch::optim::AdamWOptions options() {
  return torch::optim::AdamWOptions(3e-3).betas({0.9, 0.98}).eps(1e-9).weight_decay(0.01);
}

}  // namespace

// The checkpoint and every test of exact resume rely on this: the same numbers as libtorch's AdamW.
TEST(ForeachAdamW, MatchesLibtorchAdamWBitForBitOnTheCpu) {
  auto a = make_params();
  auto b = clones(a);
  torch::optim::AdamW reference(a, options());
  ForeachAdamW foreach(b, options());
  for (int step = 1; step <= 6; ++step) {
    torch::manual_seed(100 + step);
    for (size_t i = 0; i < a.size(); ++i) {
      auto g = torch::randn(a[i].sizes());
      // One parameter sits out step 3: its step count falls behind the others'.
      if (i == 1 && step == 3) {
        a[i].mutable_grad() = torch::Tensor();
        b[i].mutable_grad() = torch::Tensor();
        continue;
      }
      a[i].mutable_grad() = g.clone();
      b[i].mutable_grad() = g.clone();
    }
    reference.step();
    foreach.step();
  }
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
    auto& ra = static_cast<torch::optim::AdamWParamState&>(*reference.state().at(a[i].unsafeGetTensorImpl()));
    auto& rb = static_cast<torch::optim::AdamWParamState&>(*foreach.state().at(b[i].unsafeGetTensorImpl()));
    EXPECT_EQ(ra.step(), rb.step());
    EXPECT_TRUE(torch::equal(ra.exp_avg(), rb.exp_avg()));
    EXPECT_TRUE(torch::equal(ra.exp_avg_sq(), rb.exp_avg_sq()));
  }
  auto& skipped = static_cast<torch::optim::AdamWParamState&>(*foreach.state().at(b[1].unsafeGetTensorImpl()));
  EXPECT_EQ(skipped.step(), 5);
}

TEST(ForeachAdamW, ClipScalesTheJointNormDownAndLeavesSmallGradientsAlone) {
  std::vector<torch::Tensor> big{torch::full({4}, 3.0), torch::full({2, 2}, 4.0)};  // norm 10
  std::vector<torch::Tensor> expected{big[0].clone(), big[1].clone()};
  auto ps = clones(expected);
  for (size_t i = 0; i < ps.size(); ++i) ps[i].mutable_grad() = expected[i].clone();
  double libtorch_norm = torch::nn::utils::clip_grad_norm_(ps, 1.0);
  auto norm = clip_grad_norm(big, 1.0);
  EXPECT_NEAR(norm.item<double>(), 10.0, 1e-5);
  EXPECT_NEAR(libtorch_norm, 10.0, 1e-5);
  for (size_t i = 0; i < big.size(); ++i) EXPECT_TRUE(torch::allclose(big[i], ps[i].grad(), 0, 1e-7)) << i;
  EXPECT_NEAR(torch::cat({big[0].flatten(), big[1].flatten()}).norm().item<double>(), 1.0, 1e-5);

  std::vector<torch::Tensor> small{torch::full({3}, 0.1)};
  auto before = small[0].clone();
  clip_grad_norm(small, 1.0);
  EXPECT_TRUE(torch::equal(small[0], before));
}
