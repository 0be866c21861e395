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

// Any rank can tell another's streams at any step: what a survivor writes for a lost rank is what
// that rank would have drawn.
TEST(RngState, AnyRankComputesAnotherRanksStreamsForAStep) {
  seed_rng(5, 0, false);
  torch::rand({7});  // this process's own stream, which rng_for_step must leave alone
  RngSnapshot own = capture_rng(false);
  RngSnapshot theirs = rng_for_step(42, 17, 2, false);
  EXPECT_TRUE(torch::equal(capture_rng(false).cpu, own.cpu));
  seed_rng_for_step(42, 17, 2, false);
  EXPECT_TRUE(torch::equal(capture_rng(false).cpu, theirs.cpu));
  auto mask = torch::dropout(torch::ones({100}), 0.5, true);
  restore_rng(theirs);
  EXPECT_TRUE(torch::equal(torch::dropout(torch::ones({100}), 0.5, true), mask));
}

TEST(RngState, StepsAndRanksGetDistinctStreams) {
  auto draw = [](int64_t step, int rank) {
    seed_rng_for_step(42, step, rank, false);
    return torch::rand({4});
  };
  EXPECT_TRUE(torch::equal(draw(3, 1), draw(3, 1)));
  EXPECT_FALSE(torch::equal(draw(3, 1), draw(4, 1)));
  EXPECT_FALSE(torch::equal(draw(3, 1), draw(3, 0)));
  EXPECT_FALSE(torch::equal(draw(3, 0), draw(4, 0)));
}
