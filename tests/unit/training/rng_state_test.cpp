#include "resumable/training/rng_state.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

using namespace resumable;

TEST(RngState, RestoreReplaysTheSameNumbers) {
  seed_rng(42, 0, false);
  torch::rand({3});
  RngSnapshot snap = capture_rng(false);
  auto first = torch::rand({5});
  auto mask = torch::dropout(torch::ones({100}), 0.5, true);
  restore_rng(snap);
  EXPECT_TRUE(torch::equal(torch::rand({5}), first));
  EXPECT_TRUE(torch::equal(torch::dropout(torch::ones({100}), 0.5, true), mask));
}

TEST(RngState, RanksGetDistinctStreams) {
  seed_rng(42, 0, false);
  auto a = torch::rand({4});
  seed_rng(42, 1, false);
  auto b = torch::rand({4});
  seed_rng(42, 0, false);
  EXPECT_TRUE(torch::equal(torch::rand({4}), a));
  EXPECT_FALSE(torch::equal(a, b));
}
