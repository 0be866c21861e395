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

TEST(WarmupCosine, StretchContinuesTheCosineFromItsPhase) {
  auto s = make(10, 110, 1.0, 0.0);
  for (int i = 0; i < 60; ++i) s.advance();  // half way down: phase pi/2, lr 0.5
  s.stretch_total(160);
  EXPECT_NEAR(s.current_lr(), 0.5, 1e-12);                                 // continuous
  EXPECT_NEAR(s.lr_at(110), 0.5 * (1 + std::cos(0.75 * M_PI)), 1e-12);     // the phase half way on to pi
  EXPECT_NEAR(s.lr_at(160), 0.0, 1e-12);
  // Unlike a fresh cosine from the same point, it does not flatten there: the next step is lower.
  auto fresh = make(10, 110, 1.0, 0.0);
  for (int i = 0; i < 60; ++i) fresh.advance();
  fresh.replan_total(160);
  EXPECT_LT(s.lr_at(61), fresh.lr_at(61));
}

TEST(WarmupCosine, RepeatedStretchesStayContinuousAndEndAtTheMinimum) {
  auto s = make(10, 110, 1.0, 0.1);
  for (int i = 0; i < 10; ++i) s.advance();  // past the warmup
  double last = s.current_lr();
  const int64_t ends[] = {150, 90, 130, 120};
  for (int64_t end : ends) {
    for (int i = 0; i < 15; ++i) {
      s.advance();
      EXPECT_LE(s.current_lr(), last + 1e-12);
      last = s.current_lr();
    }
    double before = s.current_lr();
    s.stretch_total(end);
    EXPECT_NEAR(s.current_lr(), before, 1e-12);
  }
  EXPECT_NEAR(s.lr_at(120), 0.1, 1e-12);
  EXPECT_NEAR(s.lr_at(500), 0.1, 1e-12);
}

TEST(WarmupCosine, StretchAfterTheEndStaysAtTheMinimum) {
  auto s = make(0, 20, 1.0, 0.01);
  for (int i = 0; i < 25; ++i) s.advance();
  s.stretch_total(100);
  EXPECT_DOUBLE_EQ(s.current_lr(), 0.01);
  EXPECT_DOUBLE_EQ(s.lr_at(60), 0.01);
}
