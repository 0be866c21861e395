#include "resumable/training/checkpoint_summary.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "resumable/checkpoint/checkpoint_state.h"
#include "resumable/config/config.h"
#include "resumable/data/distributed_sampler.h"
#include "resumable/training/loss_scaler.h"
#include "resumable/training/train_state.h"
#include "resumable/training/warmup_cosine_schedule.h"

namespace resumable {

CheckpointSummary summarize_checkpoint(const LoadedCheckpoint& ck) {
  StateReader root(ck.root, ck.path);
  CheckpointSummary s;
  s.path = ck.path;
  s.checksum = ck.checksum;
  s.bytes = ck.bytes;
  s.format_version = root["format_version"].to_int();
  s.trainer_version = root["trainer_version"].to_string();
  s.world_size = root["world_size"].to_int();
  if (s.world_size < 1) root["world_size"].fail("expected >= 1");

  for (const auto& name : root["model"].keys()) s.parameters += root["model"][name].to_tensor().numel();
  if (s.parameters == 0) root["model"].fail("holds no tensors");

  StateReader opt = root["optimizer"];
  opt["type"].to_string();
  for (const auto& name : opt["state"].keys()) {
    StateReader entry = opt["state"][name];
    entry["step"].to_int();
    entry["exp_avg"].to_tensor();
    entry["exp_avg_sq"].to_tensor();
  }
  for (const auto& g : opt["param_groups"].items()) g["lr"].to_double();

  // Every position is range-checked: a forged file whose checksum holds must be refused here,
  // not crash the first step (a cursor at the end of the epoch leaves no batch to draw).
  auto state = from_state_dict<TrainState>(root["train_state"]);
  auto history = from_state_dict<TrainHistory>(root["history"]);
  StateReader ts = root["train_state"];
  auto at_least = [](const StateReader& field, int64_t value, int64_t lo) {
    if (value < lo) field.fail("expected >= " + std::to_string(lo) + ", found " + std::to_string(value));
  };
  at_least(ts["global_step"], state.global_step, 0);
  at_least(ts["epoch"], state.epoch, 0);
  at_least(ts["batch_in_epoch"], state.batch_in_epoch, 0);
  at_least(ts["samples_seen"], state.samples_seen, 0);
  if (state.batch_in_epoch > state.global_step) ts["batch_in_epoch"].fail("exceeds global_step");
  if (state.best_step < -1 || state.best_step > state.global_step || (state.has_best && state.best_step < 0))
    ts["best_step"].fail("out of range (" + std::to_string(state.best_step) + " for global_step " +
                         std::to_string(state.global_step) + ")");
  if (!(state.epoch_tokens >= 0) || !std::isfinite(state.epoch_loss_sum)) ts["epoch_tokens"].fail("out of range");

  auto length_is = [](const StateReader& field, size_t have, int64_t want, const std::string& of) {
    if (static_cast<int64_t>(have) != want)
      field.fail("has " + std::to_string(have) + " entries for " + of + " " + std::to_string(want));
  };
  StateReader hist = root["history"];
  length_is(hist["train_loss"], history.train_loss.size(), state.global_step, "global_step");
  length_is(hist["learning_rate"], history.learning_rate.size(), state.global_step, "global_step");
  length_is(hist["epoch_train_loss"], history.epoch_train_loss.size(), state.epoch, "epoch");
  const int64_t evals = static_cast<int64_t>(history.val_loss.size());
  length_is(hist["eval_step"], history.eval_step.size(), evals, "evaluations");
  length_is(hist["eval_epoch"], history.eval_epoch.size(), evals, "evaluations");
  length_is(hist["val_token_acc"], history.val_token_acc.size(), evals, "evaluations");
  length_is(hist["val_wer"], history.val_wer.size(), evals, "evaluations");
  length_is(hist["val_per"], history.val_per.size(), evals, "evaluations");
  for (int64_t s : history.resumed_at_step)
    if (s < 0 || s > state.global_step) hist["resumed_at_step"].fail("holds step " + std::to_string(s) + " beyond global_step");

  auto schedule = from_state_dict<ScheduleState>(root["lr_scheduler"]);
  if (schedule.total_steps < 0 || schedule.warmup_steps < 0 || schedule.step < 0)
    root["lr_scheduler"].fail("negative step counts");
  if (schedule.step != state.global_step)
    root["lr_scheduler"]["step"].fail("is " + std::to_string(schedule.step) + ", train_state.global_step " +
                                      std::to_string(state.global_step));
  s.lr = WarmupCosineSchedule(schedule).current_lr();
  if (!std::isfinite(s.lr) || s.lr < 0) root["lr_scheduler"].fail("gives no valid learning rate");
  auto scaler = from_state_dict<LossScalerState>(root["loss_scaler"]);
  if (!(scaler.scale > 0) || !std::isfinite(scaler.scale) || scaler.growth_interval < 1 || scaler.growth_tracker < 0)
    root["loss_scaler"].fail("out of range (scale " + std::to_string(scaler.scale) + ")");
  auto sampler = from_state_dict<SamplerState>(root["sampler"]);
  // A saved epoch always has samples left: an epoch that ends starts the next one before any save.
  if (sampler.dataset_size < 1 || sampler.cursor < 0 || sampler.cursor >= sampler.dataset_size ||
      sampler.epoch < 0 || sampler.epoch_batch_size < 1)
    root["sampler"].fail("position out of range (cursor " + std::to_string(sampler.cursor) + " of " +
                         std::to_string(sampler.dataset_size) + ", epoch " + std::to_string(sampler.epoch) + ")");
  if (sampler.epoch != state.epoch)
    ts["epoch"].fail("disagrees with sampler.epoch=" + std::to_string(sampler.epoch));
  s.epoch_cursor = sampler.cursor;
  s.dataset_size = sampler.dataset_size;

  s.global_step = state.global_step;
  s.epoch = state.epoch;
  s.has_best = state.has_best;
  s.best_metric = state.best_metric;
  s.best_step = state.best_step;
  s.history_steps = history.train_loss.size();
  s.history_evals = history.val_loss.size();
  if (ck.meta && (ck.meta->step != state.global_step || ck.meta->epoch != state.epoch))
    StateReader(c10::IValue(), ck.path, "meta").fail("says step " + std::to_string(ck.meta->step) + ", epoch " +
                                                     std::to_string(ck.meta->epoch) + "; the state says step " +
                                                     std::to_string(state.global_step) + ", epoch " +
                                                     std::to_string(state.epoch));

  auto rng = root["rng"]["cpu"].items();
  if (static_cast<int64_t>(rng.size()) != s.world_size)
    root["rng"]["cpu"].fail("expected one state per rank (" + std::to_string(s.world_size) + "), found " +
                            std::to_string(rng.size()));
  for (const auto& r : rng) r.to_tensor(at::kByte, 1);

  saved_config(ck);
  for (const char* v : {"graphemes", "phonemes"})
    for (const auto& sym : root["vocabulary"][v].items()) sym.to_string();
  root["data"]["fingerprint"].to_string();
  return s;
}

TrainConfig saved_config(const LoadedCheckpoint& ck) {
  const std::string origin = ck.path + ": saved config";
  try {
    TrainConfig cfg = config_from_json(nlohmann::json::parse(state_to_json_text(StateReader(ck.root, ck.path)["config"])), origin);
    validate(cfg, origin);
    return cfg;
  } catch (const ConfigError& e) {
    throw CheckpointError(e.what());
  }
}

}  // namespace resumable
