#include "resumable/training/save_policy.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>

using namespace resumable;

namespace {
std::string reason(const SavePolicy& p, StepEvents e) {
  const char* r = p.reason(e);
  return r ? r : "";
}
}  // namespace

TEST(SavePolicy, EveryReasonInItsOrder) {
  TrainConfig cfg;
  cfg.save_every_steps = 10;
  cfg.save_every_epochs = 2;
  SavePolicy p(cfg);
  EXPECT_EQ(reason(p, {.step = 3}), "");
  EXPECT_EQ(reason(p, {.step = 20}), "periodic");
  EXPECT_EQ(reason(p, {.step = 7, .epoch = 2, .epoch_ended = true}), "periodic");
  EXPECT_EQ(reason(p, {.step = 7, .epoch = 1, .epoch_ended = true}), "");
  EXPECT_EQ(reason(p, {.step = 7, .minutes_due = true}), "periodic");
  EXPECT_EQ(reason(p, {.step = 7, .new_best = true}), "new best");
  EXPECT_EQ(reason(p, {.step = 7, .max_steps = true}), "max_steps");
  EXPECT_EQ(reason(p, {.step = 7, .finished = true, .max_steps = true}), "end of training");
  EXPECT_EQ(reason(p, {.step = 20, .new_best = true, .stop = true, .finished = true}), "stop signal");
}

TEST(SavePolicy, ZeroTurnsAPeriodOff) {
  TrainConfig cfg;
  cfg.save_every_steps = 0;
  cfg.save_every_epochs = 0;
  cfg.save_every_minutes = 0;
  SavePolicy p(cfg);
  EXPECT_EQ(reason(p, {.step = 100, .epoch = 4, .epoch_ended = true}), "");
  EXPECT_FALSE(p.minutes_due());
}

TEST(SavePolicy, MinutesCountFromTheLastSave) {
  TrainConfig cfg;
  cfg.save_every_minutes = 1e-5;  // 0.6 ms
  SavePolicy p(cfg);
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_TRUE(p.minutes_due());
  p.saved();
  EXPECT_FALSE(p.minutes_due());
  cfg.save_every_minutes = 60;
  SavePolicy q(cfg);
  q.saved();
  EXPECT_FALSE(q.minutes_due());
}

// A failed save holds periodic saves back for a doubling, bounded backoff (steps or minutes alike),
// then allows one retry; a success ends the run of failures.
TEST(SavePolicy, AFailedSaveBacksOffBeforeTheNextPeriodicTry) {
  TrainConfig cfg;
  cfg.save_every_steps = 1;       // every step would retry at once
  cfg.save_every_minutes = 1e-5;  // and so would the clock
  SavePolicy p(cfg, SaveBackoff{0.05, 0.15});
  EXPECT_EQ(p.failed(), 1);
  EXPECT_DOUBLE_EQ(p.retry_seconds(), 0.05);
  EXPECT_TRUE(p.backing_off());
  EXPECT_FALSE(p.minutes_due());
  EXPECT_EQ(reason(p, {.step = 5, .backing_off = p.backing_off()}), "");
  // A new best, a stop and the end are never held back.
  EXPECT_EQ(reason(p, {.step = 5, .new_best = true, .backing_off = true}), "new best");
  EXPECT_EQ(reason(p, {.step = 5, .stop = true, .backing_off = true}), "stop signal");
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  EXPECT_FALSE(p.backing_off());
  EXPECT_TRUE(p.minutes_due());  // the retry, even where only a step period is set
  EXPECT_EQ(reason(p, {.step = 6, .minutes_due = p.minutes_due(), .backing_off = p.backing_off()}), "periodic");
  EXPECT_EQ(p.failed(), 2);
  EXPECT_DOUBLE_EQ(p.retry_seconds(), 0.1);
  // A save that may not wait (a new best) and fails during the backoff: the same outage.
  EXPECT_EQ(p.failed(/*same_outage=*/p.backing_off()), 2);
  EXPECT_EQ(p.failed(), 3);
  EXPECT_DOUBLE_EQ(p.retry_seconds(), 0.15);  // bounded
  EXPECT_EQ(p.failed(), 4);
  EXPECT_DOUBLE_EQ(p.retry_seconds(), 0.15);
  p.saved();
  EXPECT_EQ(p.failures(), 0);
  EXPECT_FALSE(p.backing_off());
  EXPECT_EQ(p.failed(), 1);  // a new run of failures starts over
  EXPECT_DOUBLE_EQ(p.retry_seconds(), 0.05);
}

TEST(SavePolicy, TheDefaultBackoffStartsAtTenSeconds) {
  TrainConfig cfg;
  SavePolicy p(cfg);
  EXPECT_EQ(p.failed(), 1);
  EXPECT_DOUBLE_EQ(p.retry_seconds(), 10);
  EXPECT_TRUE(p.backing_off());
  EXPECT_EQ(p.failed(/*same_outage=*/p.backing_off()), 1);  // within those 10 s
}
