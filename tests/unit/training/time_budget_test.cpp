#include "resumable/training/time_budget.h"

#include <gtest/gtest.h>

using namespace resumable;

namespace {
TimeBudget::EpochEnd at(int64_t epochs_done, double now, double reserve = 0, bool warmed_up = true) {
  TimeBudget::EpochEnd e;
  e.epochs_done = epochs_done;
  e.step = epochs_done * 10;  // 10 steps per epoch
  e.now = now;
  e.used = now;               // one invocation, started at 0
  e.reserve = reserve;
  e.steps_per_epoch = 10;
  e.warmed_up = warmed_up;
  return e;
}
}  // namespace

TEST(TimeBudget, NeedsTwoEpochEndsAfterTheWarmup) {
  TimeBudget b(100);
  EXPECT_FALSE(b.at_epoch_end(at(1, 4, 0, false)));  // warming up: not measured
  EXPECT_FALSE(b.at_epoch_end(at(2, 9)));            // the first mark only
  EXPECT_TRUE(b.at_epoch_end(at(3, 14)));
}

TEST(TimeBudget, FitsWholeEpochsIntoWhatIsLeftAfterTheReserve) {
  TimeBudget b(100);
  b.at_epoch_end(at(2, 10));
  auto f = b.at_epoch_end(at(3, 15, 5));  // 5 s per epoch, 100 - 15 - 5 = 80 s left: 16 more
  ASSERT_TRUE(f);
  EXPECT_DOUBLE_EQ(f->seconds_per_epoch, 5);
  EXPECT_DOUBLE_EQ(f->seconds_left, 80);
  EXPECT_EQ(f->epochs, 19);
  f = b.at_epoch_end(at(4, 20, 7));  // 73 s left: 14 more (a partial epoch does not count)
  ASSERT_TRUE(f);
  EXPECT_EQ(f->epochs, 18);
}

TEST(TimeBudget, SlowFirstEpochsDropOutOfTheRate) {
  TimeBudget b(1000);
  b.at_epoch_end(at(2, 0));
  b.at_epoch_end(at(3, 20));  // a slow epoch (new shapes)
  b.at_epoch_end(at(4, 25));
  b.at_epoch_end(at(5, 30));
  auto f = b.at_epoch_end(at(6, 35));  // the later half: epochs 4..6, 5 s each
  ASSERT_TRUE(f);
  EXPECT_DOUBLE_EQ(f->seconds_per_epoch, 5);
  EXPECT_EQ(f->epochs, 6 + 193);  // (1000 - 35) / 5
}

TEST(TimeBudget, SettledOnceNinetyPercentIsSpent) {
  TimeBudget b(100);
  b.at_epoch_end(at(2, 80));
  EXPECT_TRUE(b.at_epoch_end(at(3, 85)));
  auto e = at(4, 90);
  e.planned_epochs = 5;
  EXPECT_FALSE(b.at_epoch_end(e));
  e = at(5, 95);
  e.planned_epochs = 7;
  EXPECT_FALSE(b.at_epoch_end(e));
}

TEST(TimeBudget, ARunNotFittedYetGetsAnEndEvenPastTheBudget) {
  TimeBudget b(100);
  b.at_epoch_end(at(2, 95));
  auto f = b.at_epoch_end(at(3, 120));  // the slow first epochs took it all: one more, then the end
  ASSERT_TRUE(f);
  EXPECT_EQ(f->epochs, 4);
}

TEST(TimeBudget, AtLeastOneMoreEpochWhenTheTimeIsShort) {
  TimeBudget b(100);
  b.at_epoch_end(at(2, 10));
  auto f = b.at_epoch_end(at(3, 80, 30));  // 70 s per epoch, nothing left after the reserve
  ASSERT_TRUE(f);
  EXPECT_LT(f->seconds_left, 0);
  EXPECT_EQ(f->epochs, 4);
}

TEST(TimeBudget, EarlierInvocationsCountAsSpent) {
  TimeBudget b(100);
  auto e1 = at(12, 5), e2 = at(13, 10);
  e1.used = 55;  // resumed with 50 s spent before
  e2.used = 60;
  b.at_epoch_end(e1);
  auto f = b.at_epoch_end(e2);  // 5 s per epoch, 40 s left
  ASSERT_TRUE(f);
  EXPECT_EQ(f->epochs, 21);
}

TEST(TimeBudget, KeepsThePlanWithinOnePercent) {
  TimeBudget b(10000);
  b.at_epoch_end(at(2, 0));
  auto e = at(3, 50);  // 50 s per epoch: 199 epochs in all
  e.planned_epochs = 200;
  EXPECT_FALSE(b.at_epoch_end(e));  // 199 is within 2 of 200
  e = at(4, 100);
  e.planned_epochs = 210;
  auto f = b.at_epoch_end(e);  // 198 against 210: re-fitted
  ASSERT_TRUE(f);
  EXPECT_EQ(f->epochs, 4 + 198);
}
