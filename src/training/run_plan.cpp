#include "resumable/training/run_plan.h"

#include <variant>

#include "resumable/training/checkpoint_schema.h"
#include "resumable/util/atomic_file.h"

namespace resumable {
namespace {

std::string list_text(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? "; " : "") + items[i];
  return out;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s == tail.substr(1) || (s.size() > tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0);
}

// Resuming a file of another run without --config or --run-dir continues in that run's directory
// (the one holding its checkpoints/ folder, or its checkpoints/backup/ folder for a backup).
std::string run_dir_for(const TrainConfig& cfg, const CliArgs& cli) {
  const std::string& from = cfg.resume_from;
  if (cfg.run_dir.empty() && !cli.config_path && from != "auto" && from != "never") {
    std::string folder = parent_directory(from);
    if (ends_with(folder, "/checkpoints/backup")) folder = parent_directory(folder);
    if (ends_with(folder, "/checkpoints")) return parent_directory(folder);
  }
  return cfg.resolved_run_dir();
}

// The config the run uses, once the checkpoint is known: the saved one is the base when no
// --config was given.
void settle_config(RunPlan& plan, const CliArgs& cli) {
  if (!plan.resume.checkpoint) return;
  plan.saved_config = saved_config(*plan.resume.checkpoint, &plan.notes);
  if (cli.config_path) return;
  TrainConfig base = *plan.saved_config;
  for (const auto& f : config_fields())  // per-invocation fields never come from the file
    if (f.role == FieldRole::kInvocation) std::visit([&](auto m) { base.*m = TrainConfig{}.*m; }, f.member);
  base.name = plan.config.name;
  plan.config = apply_overrides(base, cli);
  plan.config.run_dir = plan.run_dir;
}

// Throws what a checkpoint that does not fit the config stops the run with: architecture or data
// differences are an error, others are warnings or re-plans (the Trainer).
void refuse_misfit(const RunPlan& plan, const CliArgs& cli) {
  if (!plan.resume.checkpoint) return;
  const LoadedCheckpoint& ck = *plan.resume.checkpoint;
  const TrainConfig& saved = *plan.saved_config;
  const bool resuming = plan.resume.kind == ResumePlan::Kind::kResume && !cli.eval;
  // Another global batch regroups every later sample, so the resume proof would refuse it after the
  // whole load: say so now, before the data and the model are built.
  if (resuming && plan.config.batch_size != saved.batch_size && !plan.config.allow_data_drift)
    throw ConfigError("batch_size: saved " + std::to_string(saved.batch_size) + " in " + ck.path + ", given " +
                      std::to_string(plan.config.batch_size) +
                      ": the batches after the checkpoint would differ from an uninterrupted run's; resume with "
                      "--batch-size " + std::to_string(saved.batch_size) +
                      ", or pass --allow-data-drift if the change is intended");
  std::vector<std::string> errors;
  for (const auto& d : diff_configs(saved, plan.config)) {
    const bool data = d.role == FieldRole::kData && resuming;
    // New data or a new seed on purpose: the Trainer notes it, and the resume proof reports the
    // drift instead of stopping.
    if (d.role == FieldRole::kArchitecture || (data && !plan.config.allow_data_drift))
      errors.push_back(d.field + ": saved " + d.saved + ", given " + d.given);
  }
  if (!errors.empty())
    throw CheckpointError(ck.path + ": does not fit this config (" + list_text(errors) +
                          "); resume with the saved values, pass --allow-data-drift if new data or a new seed is intended, or start a "
                          "new run (--init-from loads weights only)");
}

RunPlan new_plan(TrainConfig& cfg, const CliArgs& cli) {
  RunPlan plan;
  plan.evaluate_only = cli.eval;
  plan.ensemble = cli.ensemble;
  plan.run_dir = run_dir_for(cfg, cli);
  cfg.run_dir = plan.run_dir;
  return plan;
}

}  // namespace

RunPlan plan_run(TrainConfig cfg, const CliArgs& cli, Distributed& dist) {
  RunPlan plan = new_plan(cfg, cli);
  plan.resume = plan_resume(cfg, dist, ResumeOptions{cli.eval});
  plan.config = std::move(cfg);
  settle_config(plan, cli);
  refuse_misfit(plan, cli);
  return plan;
}

RunPlan preview_run(TrainConfig cfg, const CliArgs& cli, ResumePreview& preview) {
  RunPlan plan = new_plan(cfg, cli);
  plan.resume = preview_resume(cfg, ResumeOptions{cli.eval}, preview);
  plan.config = std::move(cfg);
  try {
    settle_config(plan, cli);
    refuse_misfit(plan, cli);
  } catch (const std::exception& e) {
    if (!preview.refusal) preview.refusal = refusal_of(e);
  }
  return plan;
}

std::vector<std::string> resume_changes(const TrainConfig& saved, const TrainConfig& cfg) {
  std::vector<std::string> notes;
  for (const auto& d : diff_configs(saved, cfg)) {
    if (d.role == FieldRole::kData && cfg.allow_data_drift)
      notes.push_back(d.field + " " + d.saved + " -> " + d.given + " (--allow-data-drift)");
    if (d.role == FieldRole::kTuning || d.role == FieldRole::kSchedule)
      notes.push_back(d.field + " " + d.saved + " -> " + d.given +
                      (d.field.rfind("warmup", 0) == 0 ? " (ignored: the saved warmup is kept)"
                       : d.field == "epochs" && cfg.time_budget_minutes > 0
                           ? " (ignored: the time budget fits the epochs)"
                           : ""));
  }
  return notes;
}

}  // namespace resumable
