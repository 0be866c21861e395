#include "resumable/checkpoint/checkpoint_state.h"
#include "resumable/checkpoint/checkpoint_file.h"
#include "resumable/data/distributed_sampler.h"
#include "resumable/training/train_state.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

using namespace resumable;

namespace {

struct Tiny : torch::nn::Module {
  Tiny() {
    a = register_module("a", torch::nn::Linear(3, 4));
    b = register_module("b", torch::nn::Linear(4, 2));
  }
  torch::Tensor forward(torch::Tensor x) { return b(torch::relu(a(x))); }
  torch::nn::Linear a{nullptr}, b{nullptr};
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}

// Through the real file format, so what is checked is what a resume sees.
StateReader round_trip(const StateDict& d, const std::string& name) {
  StateDict root = new_state_dict();
  root.insert("format_version", kCheckpointFormatVersion);
  root.insert("x", d);
  auto ck = parse_checkpoint(serialize_checkpoint(root).bytes, name);
  return StateReader(ck.root, name)["x"];
}

}  // namespace

TEST(StateReader, ErrorsNameFileAndFieldPath) {
  StateDict d = new_state_dict();
  StateDict inner = new_state_dict();
  inner.insert("total_steps", std::string("many"));
  d.insert("scheduler", inner);
  StateReader r(d, "ck.pt");
  EXPECT_EQ(error_of([&] { r["scheduler"]["total_steps"].to_int(); }),
            "ck.pt: field 'scheduler.total_steps': expected an integer, found a string");
  EXPECT_EQ(error_of([&] { r["scheduler"]["warmup"].to_int(); }), "ck.pt: field 'scheduler.warmup': missing");
  EXPECT_EQ(error_of([&] { r["scheduler"]["total_steps"]["x"]; }),
            "ck.pt: field 'scheduler.total_steps': expected a dict, found a string");
}

TEST(StateReader, TextThatIsNotUtf8IsRefusedNotThrownThrough) {
  // The fuzzer's find: a flipped bit in a saved config string made the JSON writer throw out of
  // `ckpt info`. A damaged string or key is a checkpoint error naming the field.
  StateDict d = new_state_dict();
  StateDict config = new_state_dict();
  config.insert("data", std::string("data/cmudict\xff.dict"));
  d.insert("config", config);
  StateReader r(d, "ck.pt");
  EXPECT_EQ(error_of([&] { state_to_json_text(r["config"]); }), "ck.pt: field 'config': holds text that is not valid UTF-8");
  config.insert_or_assign("data", std::string("data/cmudict.dict"));
  config.insert("bad\xc3key", 1);
  EXPECT_EQ(error_of([&] { state_to_json_text(r["config"]); }), "ck.pt: field 'config': holds text that is not valid UTF-8");
  config.erase("bad\xc3key");
  EXPECT_EQ(state_to_json_text(r["config"]), R"({"data":"data/cmudict.dict"})");
}

TEST(StateReader, TensorChecks) {
  StateDict d = new_state_dict();
  d.insert("t", torch::zeros({2, 3}));
  StateReader r(d, "ck.pt");
  EXPECT_NE(error_of([&] { r["t"].to_tensor(torch::kDouble); }).find("expected dtype Double, found Float"), std::string::npos);
  EXPECT_NE(error_of([&] { r["t"].to_tensor(std::nullopt, 1); }).find("expected a 1-D tensor, found shape [2,3]"), std::string::npos);
  EXPECT_EQ(r["t"].to_tensor(torch::kFloat, 2).numel(), 6);
}

TEST(StateDicts, PlainStatesRoundTripExactly) {
  TrainState s;
  s.global_step = 12;
  s.epoch_loss_sum = 0.1 + 0.2;  // not representable exactly: must survive bit for bit
  s.has_best = true;
  s.history.train_loss = {1.5, 0.25, 1.0 / 3.0};
  s.history.eval_step = {4, 8};
  auto back = from_state_dict<TrainState>(round_trip(to_state_dict(s), "s.pt"));
  auto hist = from_state_dict<TrainHistory>(round_trip(to_state_dict(s.history), "h.pt"));
  EXPECT_EQ(back.global_step, 12);
  EXPECT_EQ(back.epoch_loss_sum, 0.1 + 0.2);
  EXPECT_TRUE(back.has_best);
  EXPECT_EQ(hist.train_loss, s.history.train_loss);
  EXPECT_EQ(hist.eval_step, s.history.eval_step);
  SamplerState ss;
  ss.cursor = 77;
  EXPECT_EQ(from_state_dict<SamplerState>(round_trip(to_state_dict(ss), "x.pt")).cursor, 77);
}

TEST(StateDicts, ModelRoundTripAndMismatches) {
  torch::manual_seed(1);
  Tiny a;
  torch::manual_seed(2);
  Tiny b;
  StateReader saved = round_trip(model_state_dict(a), "m.pt");
  load_model_state_dict(b, saved);
  for (const auto& p : a.named_parameters()) EXPECT_TRUE(torch::equal(p.value(), b.named_parameters()[p.key()]));

  StateDict wrong = model_state_dict(a);
  wrong.insert_or_assign("a.weight", torch::zeros({5, 3}));
  EXPECT_NE(error_of([&] { load_model_state_dict(b, StateReader(wrong, "m.pt")); })
                .find("field 'a.weight': expected shape [4,3], found [5,3]"),
            std::string::npos);
  StateDict extra = model_state_dict(a);
  extra.insert("c.weight", torch::zeros({1}));
  EXPECT_NE(error_of([&] { load_model_state_dict(b, StateReader(extra, "m.pt")); }).find("'c.weight': not a parameter"),
            std::string::npos);
  StateDict missing = model_state_dict(a);
  ASSERT_EQ(missing.erase("b.bias"), 1u);
  EXPECT_NE(error_of([&] { load_model_state_dict(b, StateReader(missing, "m.pt")); }).find("'b.bias': missing"),
            std::string::npos);
}

TEST(StateDicts, OptimizerStateRoundTripContinuesIdentically) {
  auto step = [](Tiny& m, torch::optim::AdamW& opt, int i) {
    opt.zero_grad();
    torch::manual_seed(100 + i);
    m.forward(torch::randn({5, 3})).pow(2).sum().backward();
    opt.step();
  };
  torch::manual_seed(1);
  Tiny a;
  torch::optim::AdamW oa(a.parameters(), torch::optim::AdamWOptions(0.01).weight_decay(0.1));
  for (int i = 0; i < 3; ++i) step(a, oa, i);
  StateReader model = round_trip(model_state_dict(a), "m.pt");
  StateReader opt = round_trip(optimizer_state_dict(oa, a), "o.pt");

  torch::manual_seed(9);
  Tiny b;
  // The learning rate is the schedule's (the trainer sets it before every step), not the file's.
  torch::optim::AdamW ob(b.parameters(), torch::optim::AdamWOptions(0.01));
  load_model_state_dict(b, model);
  load_optimizer_state_dict(ob, b, opt);
  for (int i = 3; i < 6; ++i) {
    step(a, oa, i);
    step(b, ob, i);
  }
  for (const auto& p : a.named_parameters()) EXPECT_TRUE(torch::equal(p.value(), b.named_parameters()[p.key()])) << p.key();
}

TEST(StateDicts, OptimizerLearningRateIsNotTakenFromTheFile) {
  torch::manual_seed(1);
  Tiny a;
  torch::optim::AdamW oa(a.parameters(), torch::optim::AdamWOptions(0.01).weight_decay(0.1));
  StateReader opt = round_trip(optimizer_state_dict(oa, a), "o.pt");
  // Written for readers in Python, whose optimizers keep the lr in each group...
  EXPECT_DOUBLE_EQ(opt["param_groups"].items()[0]["lr"].to_double(), 0.01);
  // ...but loading leaves the one source, the schedule's value, alone; the rest is the file's.
  torch::optim::AdamW ob(a.parameters(), torch::optim::AdamWOptions(0.02));
  load_optimizer_state_dict(ob, a, opt);
  const auto& o = static_cast<const torch::optim::AdamWOptions&>(ob.param_groups()[0].options());
  EXPECT_DOUBLE_EQ(o.lr(), 0.02);
  EXPECT_DOUBLE_EQ(o.weight_decay(), 0.1);
}
