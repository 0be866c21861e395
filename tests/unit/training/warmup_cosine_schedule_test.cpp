#include "resumable/training/warmup_cosine_schedule.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace resumable;

namespace {
WarmupCosineSchedule make(int64_t warmup, int64_t total, double max_lr = 1.0, double min_lr = 0.0) {
  ScheduleState s;
  s.warmup_steps = warmup;
  s.total_steps = total;
  s.max_lr = max_lr;
  s.min_lr = min_lr;
  return WarmupCosineSchedule(s);
}
}  // namespace

TEST(WarmupCosine, ValuesAtKnownSteps) {
  auto s = make(10, 110, 1.0, 0.0);
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.1);
  EXPECT_DOUBLE_EQ(s.lr_at(4), 0.5);
  EXPECT_DOUBLE_EQ(s.lr_at(9), 1.0);
  EXPECT_DOUBLE_EQ(s.lr_at(10), 1.0);                    // peak right after warmup
  EXPECT_NEAR(s.lr_at(60), 0.5, 1e-12);                  // half way down the cosine
  EXPECT_NEAR(s.lr_at(35), 0.5 * (1 + std::cos(M_PI / 4)), 1e-12);
  EXPECT_DOUBLE_EQ(s.lr_at(110), 0.0);
  EXPECT_DOUBLE_EQ(s.lr_at(500), 0.0);
  auto m = make(0, 100, 2.0, 0.5);
  EXPECT_DOUBLE_EQ(m.lr_at(0), 2.0);
  EXPECT_DOUBLE_EQ(m.lr_at(100), 0.5);
}

TEST(WarmupCosine, StepAdvances) {
  auto s = make(2, 10);
  EXPECT_DOUBLE_EQ(s.current_lr(), 0.5);
  s.advance();
  EXPECT_EQ(s.state().step, 1);
  EXPECT_DOUBLE_EQ(s.current_lr(), 1.0);
}

TEST(WarmupCosine, ReplanContinuesFromCurrentLrToNewEnd) {
  auto s = make(10, 110);
  for (int i = 0; i < 60; ++i) s.advance();
  double before = s.current_lr();
  s.replan_total(210);
  EXPECT_DOUBLE_EQ(s.current_lr(), before);               // continuous at the re-plan point
  EXPECT_NEAR(s.lr_at(135), before * 0.5, 1e-12);         // half way from step 60 to 210
  EXPECT_DOUBLE_EQ(s.lr_at(210), 0.0);
  // Re-planning twice keeps continuity too.
  for (int i = 0; i < 30; ++i) s.advance();
  double mid = s.current_lr();
  s.replan_total(300);
  EXPECT_DOUBLE_EQ(s.current_lr(), mid);
  EXPECT_DOUBLE_EQ(s.lr_at(300), 0.0);
}

TEST(WarmupCosine, ReplanDuringWarmupOnlyMovesTheEnd) {
  auto s = make(10, 110);
  for (int i = 0; i < 5; ++i) s.advance();
  s.replan_total(210);
  EXPECT_EQ(s.state().anchor_step, -1);
  EXPECT_DOUBLE_EQ(s.lr_at(10), 1.0);
  EXPECT_NEAR(s.lr_at(110), 0.5, 1e-12);
}

TEST(WarmupCosine, RescaleScalesTheCurve) {
  auto s = make(0, 100, 1.0, 0.0);
  for (int i = 0; i < 50; ++i) s.advance();
  s.replan_total(200);
  double before = s.current_lr();
  s.rescale_lr(0.5, 0.0);
  EXPECT_NEAR(s.current_lr(), before * 0.5, 1e-12);
}
