#include "resumable/training/loss_scaler.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>

using namespace resumable;

TEST(LossScaler, DisabledIsTheIdentity) {
  LossScaler s(false);
  auto loss = torch::tensor({2.0f});
  EXPECT_TRUE(torch::equal(s.scale(loss), loss));
  std::vector<at::Tensor> g{torch::full({2}, std::numeric_limits<float>::infinity())};
  EXPECT_TRUE(s.unscale(g));  // never skips
  s.update(true);
  EXPECT_EQ(s.state().skipped_steps, 0);
}

TEST(LossScaler, UnscalesAndDetectsOverflow) {
  LossScaler s(true);
  EXPECT_FLOAT_EQ(s.scale(torch::tensor({1.0f})).item<float>(), 65536.0f);
  std::vector<at::Tensor> g{torch::full({3}, 65536.0f * 2)};
  EXPECT_TRUE(s.unscale(g));
  EXPECT_TRUE(torch::allclose(g[0], torch::full({3}, 2.0f)));
  std::vector<at::Tensor> bad{torch::ones({2}), torch::tensor({1.0f, std::numeric_limits<float>::quiet_NaN()})};
  EXPECT_FALSE(s.unscale(bad));
}

TEST(LossScaler, BacksOffOnOverflowAndGrowsAfterTheInterval) {
  LossScaler s(true);
  LossScalerState st = s.state();
  st.growth_interval = 3;
  s.load_state(st);
  s.update(true);
  EXPECT_DOUBLE_EQ(s.state().scale, 32768.0);
  EXPECT_EQ(s.state().skipped_steps, 1);
  s.update(false);
  s.update(false);
  EXPECT_DOUBLE_EQ(s.state().scale, 32768.0);
  s.update(false);
  EXPECT_DOUBLE_EQ(s.state().scale, 65536.0);
  EXPECT_EQ(s.state().growth_tracker, 0);
}
