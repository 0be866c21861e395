#include "resumable/checkpoint_summary.h"

#include <nlohmann/json.hpp>

#include "resumable/checkpoint_state.h"
#include "resumable/config.h"
#include "resumable/distributed_sampler.h"
#include "resumable/loss_scaler.h"
#include "resumable/train_state.h"
#include "resumable/warmup_cosine_schedule.h"

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

  auto schedule = from_state_dict<ScheduleState>(root["lr_scheduler"]);
  if (schedule.total_steps < 0 || schedule.warmup_steps < 0 || schedule.step < 0)
    root["lr_scheduler"].fail("negative step counts");
  s.lr = WarmupCosineSchedule(schedule).current_lr();
  from_state_dict<LossScalerState>(root["loss_scaler"]);
  auto sampler = from_state_dict<SamplerState>(root["sampler"]);
  if (sampler.cursor < 0 || sampler.cursor > sampler.dataset_size || sampler.epoch_batch_size < 1)
    root["sampler"].fail("position out of range (cursor " + std::to_string(sampler.cursor) + " of " +
                         std::to_string(sampler.dataset_size) + ")");
  s.epoch_cursor = sampler.cursor;
  s.dataset_size = sampler.dataset_size;

  auto state = from_state_dict<TrainState>(root["train_state"]);
  auto history = from_state_dict<TrainHistory>(root["history"]);
  s.global_step = state.global_step;
  s.epoch = state.epoch;
  s.has_best = state.has_best;
  s.best_metric = state.best_metric;
  s.best_step = state.best_step;
  s.history_steps = history.train_loss.size();
  s.history_evals = history.val_loss.size();

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
