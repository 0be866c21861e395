#include "resumable/training/train_state.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace resumable;

TEST(TrainState, RecordsStepsAndEpochs) {
  TrainState s;
  s.record_step(10, 5, 0.1, 4);
  s.record_step(6, 5, 0.2, 4);
  EXPECT_EQ(s.global_step, 2);
  EXPECT_EQ(s.batch_in_epoch, 2);
  EXPECT_EQ(s.samples_seen, 8);
  EXPECT_EQ(s.history.train_loss, (std::vector<double>{2.0, 1.2}));
  EXPECT_EQ(s.history.learning_rate, (std::vector<double>{0.1, 0.2}));
  s.finish_epoch();
  EXPECT_EQ(s.epoch, 1);
  EXPECT_EQ(s.batch_in_epoch, 0);
  EXPECT_EQ(s.history.epoch_train_loss, (std::vector<double>{1.6}));  // token-weighted
}

TEST(TrainState, BestFollowsMetricDirection) {
  TrainState s;
  EvalResult r;
  r.loss = 2.0;
  r.token_acc = 0.5;
  EXPECT_TRUE(s.record_eval(r, "val_loss", false));
  r.loss = 2.5;
  EXPECT_FALSE(s.record_eval(r, "val_loss", false));
  r.loss = 1.0;
  EXPECT_TRUE(s.record_eval(r, "val_loss", false));
  EXPECT_DOUBLE_EQ(s.best_metric, 1.0);
  EXPECT_EQ(s.history.val_loss.size(), 3u);

  TrainState acc;
  EXPECT_TRUE(acc.record_eval(r, "val_token_acc", true));
  r.token_acc = 0.4;
  EXPECT_FALSE(acc.record_eval(r, "val_token_acc", true));
  r.token_acc = 0.6;
  EXPECT_TRUE(acc.record_eval(r, "val_token_acc", true));
  r.token_acc = NAN;
  EXPECT_FALSE(acc.record_eval(r, "val_token_acc", true));
}

TEST(TrainState, VisitListsEveryScalarOnce) {
  TrainState s;
  int fields = 0;
  struct Counter {
    int& n;
    void operator()(const char*, int64_t&) { ++n; }
    void operator()(const char*, double&) { ++n; }
    void operator()(const char*, bool&) { ++n; }
    void operator()(const char*, bool&, bool) { ++n; }
    void operator()(const char*, double&, double) { ++n; }
    void operator()(const char*, int64_t&, int64_t) { ++n; }
    void operator()(const char*, std::string&, std::string) { ++n; }
  };
  s.visit(Counter{fields});
  EXPECT_EQ(fields, 14);
}
