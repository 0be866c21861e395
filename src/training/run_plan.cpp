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

}  // namespace

RunPlan plan_run(TrainConfig cfg, const CliArgs& cli, Distributed& dist) {
  RunPlan plan;
  plan.evaluate_only = cli.eval;
  plan.ensemble = cli.ensemble;
  plan.run_dir = run_dir_for(cfg, cli);
  cfg.run_dir = plan.run_dir;
  plan.resume = plan_resume(cfg, dist, ResumeOptions{cli.eval});
  plan.config = std::move(cfg);
  if (!plan.resume.checkpoint) return plan;

  // The saved config is the base when no --config was given; otherwise the two are compared:
  // architecture or data differences are an error, others are warnings or re-plans (the Trainer).
  const LoadedCheckpoint& ck = *plan.resume.checkpoint;
  plan.saved_config = saved_config(ck, &plan.notes);
  const TrainConfig& saved = *plan.saved_config;
  if (!cli.config_path) {
    TrainConfig base = saved;
    for (const auto& f : config_fields())  // per-invocation fields never come from the file
      if (f.role == FieldRole::kInvocation) std::visit([&](auto m) { base.*m = TrainConfig{}.*m; }, f.member);
    base.name = plan.config.name;
    plan.config = apply_overrides(base, cli);
    plan.config.run_dir = plan.run_dir;
  }
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
  return plan;
}

}  // namespace resumable
