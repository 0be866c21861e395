#include "resumable/data/distributed_sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

using namespace resumable;

namespace {

std::vector<int64_t> lengths(int64_t n) {
  std::vector<int64_t> l(n);
  for (int64_t i = 0; i < n; ++i) l[i] = (i * 7919) % 23;
  return l;
}

// All samples every rank receives in one epoch, in order, as the trainer draws them.
std::vector<std::vector<int64_t>> run_epoch(DistributedSampler& s, int world) {
  std::vector<std::vector<int64_t>> per_rank(world);
  while (!s.epoch_done()) {
    auto batch = s.next_global_batch();
    for (int r = 0; r < world; ++r) {
      auto share = DistributedSampler::rank_share(batch, r, world);
      per_rank[r].insert(per_rank[r].end(), share.begin(), share.end());
    }
  }
  return per_rank;
}

}  // namespace

class SamplerCoverage : public ::testing::TestWithParam<std::tuple<int, int64_t, int64_t, bool>> {};

TEST_P(SamplerCoverage, EverySampleExactlyOncePerEpochAcrossRanksAndShardsDisjoint) {
  auto [world, n, batch, bucketing] = GetParam();
  DistributedSampler s(lengths(n), 7, {batch, bucketing});
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    s.start_epoch(epoch);
    auto per_rank = run_epoch(s, world);
    std::map<int64_t, int> seen;
    for (const auto& r : per_rank)
      for (int64_t i : r) seen[i]++;
    ASSERT_EQ(static_cast<int64_t>(seen.size()), n);
    for (const auto& [i, c] : seen) ASSERT_EQ(c, 1) << "sample " << i << " seen " << c << " times";
    // Balanced shares: no rank gets more than one sample per step above another.
    for (const auto& r : per_rank) EXPECT_LE(static_cast<int64_t>(r.size()), (n + world - 1) / world + s.steps_per_epoch());
  }
}

INSTANTIATE_TEST_SUITE_P(WorldsAndUnevenSizes, SamplerCoverage,
                         ::testing::Combine(::testing::Values(1, 2, 3, 4), ::testing::Values<int64_t>(1, 7, 100, 1001),
                                            ::testing::Values<int64_t>(1, 5, 64), ::testing::Bool()));

TEST(DistributedSampler, OrderIsAPureFunctionOfSeedAndEpoch) {
  DistributedSampler a(lengths(500), 3, {32, true}), b(lengths(500), 3, {32, true}), c(lengths(500), 4, {32, true});
  EXPECT_EQ(a.epoch_order(0, 32), b.epoch_order(0, 32));
  EXPECT_NE(a.epoch_order(0, 32), a.epoch_order(1, 32));  // reshuffled each epoch
  EXPECT_NE(a.epoch_order(0, 32), c.epoch_order(0, 32));
}

TEST(DistributedSampler, BucketingGroupsSimilarLengths) {
  auto l = lengths(4096);
  DistributedSampler bucketed(l, 1, {64, true}), plain(l, 1, {64, false});
  auto spread = [&](const std::vector<int64_t>& order) {
    double total = 0;
    for (size_t b = 0; b + 64 <= order.size(); b += 64) {
      int64_t lo = 1 << 30, hi = -1;
      for (size_t i = b; i < b + 64; ++i) lo = std::min(lo, l[order[i]]), hi = std::max(hi, l[order[i]]);
      total += static_cast<double>(hi - lo);
    }
    return total;
  };
  EXPECT_LT(spread(bucketed.epoch_order(0, 64)), spread(plain.epoch_order(0, 64)) / 4);
}

TEST(DistributedSampler, ResumeAtAnotherWorldSizeContinuesExactly) {
  const int64_t n = 1000, batch = 48;
  DistributedSampler full(lengths(n), 9, {batch, true});
  full.start_epoch(3);
  std::vector<int64_t> reference;
  while (!full.epoch_done()) {
    auto b = full.next_global_batch();
    reference.insert(reference.end(), b.begin(), b.end());
  }
  for (int64_t stop_steps : {1, 7, 20}) {
    DistributedSampler first(lengths(n), 9, {batch, true});
    first.start_epoch(3);
    std::vector<int64_t> consumed;
    for (int64_t k = 0; k < stop_steps; ++k) {
      // 4 ranks before the stop ...
      auto b = first.next_global_batch();
      for (int r = 0; r < 4; ++r) {
        auto s = DistributedSampler::rank_share(b, r, 4);
        consumed.insert(consumed.end(), s.begin(), s.end());
      }
    }
    SamplerState saved = first.state();
    DistributedSampler second(lengths(n), 9, {batch, true});  // ... 3 ranks after it
    second.load_state(saved);
    auto rest = run_epoch(second, 3);
    std::vector<int64_t> all = consumed;
    for (auto& r : rest) all.insert(all.end(), r.begin(), r.end());
    std::sort(all.begin(), all.end());
    std::vector<int64_t> expected(n);
    for (int64_t i = 0; i < n; ++i) expected[i] = i;
    EXPECT_EQ(all, expected) << "stop after " << stop_steps << " steps";
  }
}

TEST(DistributedSampler, BatchSizeChangeMidEpochSkipsAndRepeatsNothing) {
  DistributedSampler s(lengths(777), 5, {50, true});
  s.start_epoch(0);
  std::vector<int64_t> seen;
  for (int k = 0; k < 5; ++k) {
    auto b = s.next_global_batch();
    seen.insert(seen.end(), b.begin(), b.end());
  }
  s.set_batch_size(33);
  while (!s.epoch_done()) {
    auto b = s.next_global_batch();
    EXPECT_LE(b.size(), 33u);
    seen.insert(seen.end(), b.begin(), b.end());
  }
  std::sort(seen.begin(), seen.end());
  for (int64_t i = 0; i < 777; ++i) ASSERT_EQ(seen[i], i);
}

TEST(DistributedSampler, StepsAndRankShares) {
  DistributedSampler s(lengths(10), 1, {4, false});
  EXPECT_EQ(s.steps_per_epoch(), 3);
  s.start_epoch(0);
  EXPECT_EQ(s.remaining_steps_in_epoch(), 3);
  s.next_global_batch();
  EXPECT_EQ(s.remaining_steps_in_epoch(), 2);
  EXPECT_EQ(DistributedSampler::rank_share({10, 11, 12, 13, 14}, 1, 2), (std::vector<int64_t>{11, 13}));
  EXPECT_TRUE(DistributedSampler::rank_share({10}, 2, 3).empty());
}

TEST(DistributedSampler, RefusesAStateOfAnotherDataset) {
  DistributedSampler a(lengths(10), 1, {4, false});
  SamplerState s = a.state();
  s.dataset_size = 11;
  EXPECT_THROW(a.load_state(s), std::invalid_argument);
  s = a.state();
  s.cursor = 99;
  EXPECT_THROW(a.load_state(s), std::invalid_argument);
}

TEST(SplitMix64, BelowIsInRangeAndCoversIt) {
  SplitMix64 r(1);
  std::vector<int> hits(7);
  for (int i = 0; i < 7000; ++i) hits[r.below(7)]++;
  for (int h : hits) EXPECT_GT(h, 800);
}
