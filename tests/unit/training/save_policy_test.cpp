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
