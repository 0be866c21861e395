#include "resumable/training/checkpoint_schema.h"

#include <cmath>
#include <set>

#include <nlohmann/json.hpp>

#include "resumable/data/distributed_sampler.h"
#include "resumable/training/loss_scaler.h"
#include "resumable/training/resume_proof.h"
#include "resumable/training/train_state.h"
#include "resumable/training/warmup_cosine_schedule.h"

namespace resumable {
namespace {

void at_least(const StateReader& field, int64_t value, int64_t lo) {
  if (value < lo) field.fail("expected >= " + std::to_string(lo) + ", found " + std::to_string(value));
}

void length_is(const StateReader& field, size_t have, int64_t want, const std::string& of) {
  if (static_cast<int64_t>(have) != want)
    field.fail("has " + std::to_string(have) + " entries for " + of + " " + std::to_string(want));
}

// --- each component's checks. Every position is range-checked: a forged file whose checksum holds
// must be refused here, not crash the first step (a cursor at the end of an epoch leaves no batch).

TrainConfig parse_config(const StateReader& r) {
  const std::string origin = r.file() + ": saved config";
  try {
    // Keys an older trainer wrote under their old names are read as they are: saved_config() notes them.
    TrainConfig cfg = config_from_json(nlohmann::json::parse(state_to_json_text(r)), origin, {}, OldKeys::kQuiet);
    validate(cfg, origin);
    return cfg;
  } catch (const ConfigError& e) {
    throw CheckpointError(e.what());
  }
}

void check_config(const StateReader& r, CheckpointSummary&) { parse_config(r); }

void check_vocabulary(const StateReader& r, CheckpointSummary& s) {
  s.graphemes = static_cast<int64_t>(r["graphemes"].to_strings().size());
  s.phonemes = static_cast<int64_t>(r["phonemes"].to_strings().size());
}

void check_data(const StateReader& r, CheckpointSummary&) {
  r["fingerprint"].to_string();
  at_least(r["train_samples"], r["train_samples"].to_int(), 1);
}

void check_model(const StateReader& r, CheckpointSummary& s) {
  for (const auto& name : r.keys()) s.parameters += r[name].to_tensor().numel();
  if (s.parameters == 0) r.fail("holds no tensors");
}

void check_optimizer(const StateReader& r, CheckpointSummary&) {
  r["type"].to_string();
  for (const auto& name : r["state"].keys()) {
    StateReader entry = r["state"][name];
    entry["step"].to_int();
    entry["exp_avg"].to_tensor();
    entry["exp_avg_sq"].to_tensor();
  }
  for (const auto& g : r["param_groups"].items()) g["lr"].to_double();
}

void check_lr_scheduler(const StateReader& r, CheckpointSummary& s) {
  auto schedule = from_state_dict<ScheduleState>(r);
  if (schedule.total_steps < 0 || schedule.warmup_steps < 0 || schedule.step < 0) r.fail("negative step counts");
  if (!(schedule.anchor_phase >= 0 && schedule.anchor_phase <= M_PI)) r["anchor_phase"].fail("expected 0..pi");
  s.schedule_step = schedule.step;
  s.total_steps = schedule.total_steps;
  s.lr = WarmupCosineSchedule(schedule).current_lr();
  if (!std::isfinite(s.lr) || s.lr < 0) r.fail("gives no valid learning rate");
}

void check_loss_scaler(const StateReader& r, CheckpointSummary&) {
  auto scaler = from_state_dict<LossScalerState>(r);
  if (!(scaler.scale > 0) || !std::isfinite(scaler.scale) || scaler.growth_interval < 1 || scaler.growth_tracker < 0)
    r.fail("out of range (scale " + std::to_string(scaler.scale) + ")");
}

void check_sampler(const StateReader& r, CheckpointSummary& s) {
  auto sampler = from_state_dict<SamplerState>(r);
  // A saved epoch always has samples left: an epoch that ends starts the next one before any save.
  if (sampler.dataset_size < 1 || sampler.cursor < 0 || sampler.cursor >= sampler.dataset_size ||
      sampler.epoch < 0 || sampler.epoch_batch_size < 1)
    r.fail("position out of range (cursor " + std::to_string(sampler.cursor) + " of " +
           std::to_string(sampler.dataset_size) + ", epoch " + std::to_string(sampler.epoch) + ")");
  s.epoch_cursor = sampler.cursor;
  s.dataset_size = sampler.dataset_size;
  s.sampler_epoch = sampler.epoch;
}

void check_rng(const StateReader& r, CheckpointSummary& s) {
  auto states = r["cpu"].items();
  if (static_cast<int64_t>(states.size()) != s.world_size)
    r["cpu"].fail("expected one state per rank (" + std::to_string(s.world_size) + "), found " +
                  std::to_string(states.size()));
  for (const auto& state : states) state.to_tensor(at::kByte, 1);
  if (r.has("cuda"))
    for (const auto& state : r["cuda"].items()) state.to_tensor(at::kByte, 1);
}

void check_train_state(const StateReader& r, CheckpointSummary& s) {
  auto state = from_state_dict<TrainState>(r);
  at_least(r["global_step"], state.global_step, 0);
  at_least(r["epoch"], state.epoch, 0);
  at_least(r["batch_in_epoch"], state.batch_in_epoch, 0);
  at_least(r["samples_seen"], state.samples_seen, 0);
  if (state.batch_in_epoch > state.global_step) r["batch_in_epoch"].fail("exceeds global_step");
  if (state.best_step < -1 || state.best_step > state.global_step || (state.has_best && state.best_step < 0))
    r["best_step"].fail("out of range (" + std::to_string(state.best_step) + " for global_step " +
                        std::to_string(state.global_step) + ")");
  if (!(state.epoch_tokens >= 0) || !std::isfinite(state.epoch_loss_sum)) r["epoch_tokens"].fail("out of range");
  if (r.has("train_seconds") && !(state.train_seconds >= 0 && std::isfinite(state.train_seconds)))
    r["train_seconds"].fail("expected a finite number >= 0");
  if (r.has("fitted_epochs")) at_least(r["fitted_epochs"], state.fitted_epochs, 0);
  if (r.has("attention_kernel") && !(state.attention_kernel.empty() || state.attention_kernel == "fused" ||
                                     state.attention_kernel == "math"))
    r["attention_kernel"].fail("expected \"fused\", \"math\" or \"\", found \"" + state.attention_kernel + "\"");
  s.global_step = state.global_step;
  s.epoch = state.epoch;
  s.has_best = state.has_best;
  s.best_metric = state.best_metric;
  s.best_step = state.best_step;
  s.eval_pending = state.eval_pending;
}

void check_history(const StateReader& r, CheckpointSummary& s) {
  auto history = from_state_dict<TrainHistory>(r);
  length_is(r["train_loss"], history.train_loss.size(), s.global_step, "global_step");
  length_is(r["learning_rate"], history.learning_rate.size(), s.global_step, "global_step");
  length_is(r["epoch_train_loss"], history.epoch_train_loss.size(), s.epoch, "epoch");
  const int64_t evals = static_cast<int64_t>(history.val_loss.size());
  length_is(r["eval_step"], history.eval_step.size(), evals, "evaluations");
  length_is(r["eval_epoch"], history.eval_epoch.size(), evals, "evaluations");
  length_is(r["val_token_acc"], history.val_token_acc.size(), evals, "evaluations");
  length_is(r["val_wer"], history.val_wer.size(), evals, "evaluations");
  length_is(r["val_per"], history.val_per.size(), evals, "evaluations");
  for (int64_t step : history.resumed_at_step)
    if (step < 0 || step > s.global_step)
      r["resumed_at_step"].fail("holds step " + std::to_string(step) + " beyond global_step");
  s.history_steps = history.train_loss.size();
  s.history_epochs = history.epoch_train_loss.size();
  s.history_evals = history.val_loss.size();
  s.resumed_at_step = history.resumed_at_step;
  if (evals > 0) {
    s.last_val_loss = history.val_loss.back();
    s.last_val_wer = history.val_wer.back();
    s.last_val_per = history.val_per.back();
  }
}

void check_resume_proof(const StateReader& r, CheckpointSummary& s) {
  auto proof = from_state_dict<ResumeProof>(r);
  int64_t total = 0;
  for (int64_t n : proof.batch_sizes) {
    if (n < 0) r["batch_sizes"].fail("holds a negative size");
    total += n;
  }
  length_is(r["sample_ids"], proof.sample_ids.size(), total, "the batch sizes' sum");
  length_is(r["batch_digests"], proof.batch_digests.size(), static_cast<int64_t>(proof.batch_sizes.size()), "batches");
  for (int64_t id : proof.sample_ids)
    if (id < 0 || id >= s.dataset_size)
      r["sample_ids"].fail("holds sample " + std::to_string(id) + " outside the dataset of " +
                           std::to_string(s.dataset_size));
  if (proof.step != s.global_step)
    r["step"].fail("is " + std::to_string(proof.step) + ", train_state.global_step " + std::to_string(s.global_step));
  if (!proof.batch_sizes.empty()) {
    length_is(r["rank_digests"], proof.rank_digests.size(), proof.world_size, "world_size");
    if (static_cast<int64_t>(proof.probe_samples.size()) > proof.batch_sizes.front())
      r["probe_samples"].fail("holds more samples than the first batch");
  }
  s.proof_batches = proof.batch_sizes.size();
}

}  // namespace

const std::vector<ComponentSpec>& checkpoint_components() {
  using namespace ckpt_key;
  static const std::vector<ComponentSpec> table = {
      {kConfig, 8,
       "the full resolved config (version 2 added save_timeout_s, 3 async_save, 4 proof_batches, allow_data_drift, "
       "deadline, deadline_margin_s, deadline_refresh_s, 5 time_budget_minutes, 6 attention, "
       "7 target_order; 8 renamed resume_from, limit_words, eval_limit, keep_every, bucket_mb and the _s keys "
       "to resume, max_train_words, max_eval_words, keep_every_steps, bucket_mib and _seconds)",
       check_config},
      {kVocabulary, 1, "grapheme and phoneme symbols: what each embedding row means", check_vocabulary},
      {kData, 1, "training-set size and fingerprint: a resume on other data is refused", check_data},
      {kModel, 1, "parameters and buffers by name", check_model},
      {kOptimizer, 1, "AdamW moments and step per parameter name, param_groups", check_optimizer},
      {kLrScheduler, 2, "warmup + cosine: warmup, total, max/min LR, step, re-plan anchor (version 2 added its phase)",
       check_lr_scheduler},
      {kLossScaler, 1, "fp16 dynamic loss scale and its counters", check_loss_scaler},
      {kSampler, 1, "data order seed, epoch and the global cursor within it", check_sampler},
      {kTrainState, 4,
       "step, epoch, best metric and its step (version 2 added eval_pending, 3 train_seconds and fitted_epochs, "
       "4 attention_kernel and attention_device)",
       check_train_state},
      {kHistory, 1, "per step, epoch and evaluation: losses, LR, WER/PER, resume points", check_history},
      {kRng, 1, "CPU (and CUDA) generator state of every rank (last: fresh ranks seed from the step)", check_rng},
      {kResumeProof, 1, "the next batches' sample ids and digests, the last loss, a probe loss: what a resume checks",
       check_resume_proof, /*optional=*/true},
  };
  return table;
}

std::map<std::string, int64_t> component_versions(const LoadedCheckpoint& ck) {
  StateReader root(ck.root, ck.path);
  std::map<std::string, int64_t> saved;
  if (root.has(ckpt_key::kComponentVersions))
    for (const auto& name : root[ckpt_key::kComponentVersions].keys())
      saved[name] = root[ckpt_key::kComponentVersions][name].to_int();
  const std::string writer = root.has(ckpt_key::kTrainerVersion) && root[ckpt_key::kTrainerVersion].value().isString()
                                 ? root[ckpt_key::kTrainerVersion].to_string()
                                 : "?";
  std::map<std::string, int64_t> out;
  std::set<std::string> known;
  for (const auto& spec : checkpoint_components()) {
    known.insert(spec.name);
    auto it = saved.find(spec.name);
    if (spec.optional && !root.has(spec.name)) {
      out[spec.name] = 0;
      continue;
    }
    int64_t v = it == saved.end() ? 1 : it->second;
    if (v > spec.version)
      throw CheckpointError(ck.path + ": component '" + spec.name + "' is version " + std::to_string(v) +
                                ", written by trainer " + writer + "; this is trainer " + RESUMABLE_VERSION +
                                ", which reads up to version " + std::to_string(spec.version) + ": upgrade the trainer",
                            CheckpointError::Kind::kIncompatible);
    if (v < 1) root[ckpt_key::kComponentVersions][spec.name].fail("expected a version >= 1");
    out[spec.name] = v;
  }
  for (const auto& [name, v] : saved)
    if (!known.count(name))
      throw CheckpointError(ck.path + ": component '" + name + "' (version " + std::to_string(v) +
                                ") is unknown to this trainer " + RESUMABLE_VERSION + ", written by trainer " + writer +
                                ": upgrade the trainer",
                            CheckpointError::Kind::kIncompatible);
  return out;
}

CheckpointSummary summarize_checkpoint(const LoadedCheckpoint& ck) {
  StateReader root(ck.root, ck.path);
  CheckpointSummary s;
  s.path = ck.path;
  s.checksum = ck.checksum;
  s.bytes = ck.bytes;
  s.format_version = root[ckpt_key::kFormatVersion].to_int();
  s.trainer_version = root[ckpt_key::kTrainerVersion].to_string();
  s.world_size = root[ckpt_key::kWorldSize].to_int();
  if (s.world_size < 1) root[ckpt_key::kWorldSize].fail("expected >= 1");
  s.component_versions = component_versions(ck);
  for (const auto& spec : checkpoint_components())
    if (!spec.optional || root.has(spec.name)) spec.check(root[spec.name], s);

  // Positions that must agree across components.
  if (s.schedule_step != s.global_step)
    root[ckpt_key::kLrScheduler]["step"].fail("is " + std::to_string(s.schedule_step) + ", train_state.global_step " +
                                             std::to_string(s.global_step));
  if (s.sampler_epoch != s.epoch)
    root[ckpt_key::kTrainState]["epoch"].fail("disagrees with sampler.epoch=" + std::to_string(s.sampler_epoch));
  if (ck.meta && (ck.meta->step != s.global_step || ck.meta->epoch != s.epoch))
    StateReader(c10::IValue(), ck.path, "meta").fail("says step " + std::to_string(ck.meta->step) + ", epoch " +
                                                     std::to_string(ck.meta->epoch) + "; the state says step " +
                                                     std::to_string(s.global_step) + ", epoch " + std::to_string(s.epoch));
  return s;
}

TrainConfig saved_config(const LoadedCheckpoint& ck, std::vector<std::string>* notes) {
  StateReader r = StateReader(ck.root, ck.path)[ckpt_key::kConfig];
  TrainConfig cfg = parse_config(r);
  if (notes) {
    const TrainConfig defaults;
    std::string renamed;
    for (const auto& f : config_fields()) {
      if (r.has(f.name)) continue;
      bool found = false;
      for (const auto& old : f.old_names)
        if (r.has(old)) {
          renamed += (renamed.empty() ? "" : ", ") + old + " as " + f.name;
          found = true;
        }
      if (!found)
        notes->push_back(r.field_name(f.name) + ": not in this file (written before it existed), using its default " +
                         field_value_text(defaults, f));
    }
    if (!renamed.empty())
      notes->push_back(std::string(ckpt_key::kConfig) + ": keys of their former names read under today's (" + renamed +
                       ")");
  }
  return cfg;
}

StateDict save_components(const StatefulMap& live, int64_t world_size) {
  StateDict d = new_state_dict();
  StateDict versions = new_state_dict();
  for (const auto& spec : checkpoint_components()) {
    d.insert(spec.name, live.at(spec.name).state_dict());
    versions.insert(spec.name, spec.version);
  }
  d.insert(ckpt_key::kFormatVersion, kCheckpointFormatVersion);
  d.insert(ckpt_key::kTrainerVersion, std::string(RESUMABLE_VERSION));
  d.insert(ckpt_key::kWorldSize, world_size);
  d.insert(ckpt_key::kComponentVersions, versions);
  return d;
}

void load_components(const LoadedCheckpoint& ck, const StatefulMap& live, std::vector<std::string>& notes) {
  component_versions(ck);  // refuses what is newer than this trainer
  StateReader root(ck.root, ck.path);
  for (const auto& spec : checkpoint_components()) {
    if (spec.optional && !root.has(spec.name)) {
      notes.push_back(std::string(spec.name) + ": not in this file (written before it existed), so this resume is "
                                                 "not checked against a record");
      continue;
    }
    live.at(spec.name).load_state_dict(root[spec.name], notes);
  }
}

}  // namespace resumable
