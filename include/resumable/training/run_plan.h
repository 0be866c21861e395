// What one invocation runs, settled before any model is built: the resolved config (the config
// file or the defaults, or, without --config, the config saved in the checkpoint being resumed;
// the command line over either), the run directory, and the resume plan, taken under the run
// directory's lock. The Trainer receives this and never sees the command line.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "resumable/config/cli.h"
#include "resumable/config/config.h"
#include "resumable/training/resume_planner.h"

namespace resumable {

class Distributed;

struct RunPlan {
  TrainConfig config;                       // resolved
  std::string run_dir;                      // fixed before the lock, the resume decision and every save
  ResumePlan resume;                        // where it starts (rank 0 also holds the lock)
  std::optional<TrainConfig> saved_config;  // of the checkpoint resumed, evaluated or initialized from
  std::vector<std::string> notes;           // fields an older checkpoint lacked and that took defaults
  bool evaluate_only = false;               // --eval: metrics of a checkpoint, no training
  std::vector<std::string> ensemble;        // --eval --ensemble: more checkpoints decoding with it
};

// Collective. Throws ConfigError/CheckpointError on every rank alike (a busy run directory, no usable
// checkpoint, a checkpoint whose architecture or data does not fit the given config).
RunPlan plan_run(TrainConfig cfg, const CliArgs& cli, Distributed& dist);

// plan_run as this process alone works it out, changing nothing on disk (--dry-run,
// --print-config; resume_planner.h's preview_resume): whatever a start would stop at is
// `preview.refusal` (the first), and the plan holds what was settled up to there.
RunPlan preview_run(TrainConfig cfg, const CliArgs& cli, ResumePreview& preview);

// What a resume with `cfg` changes from the `saved` config, one note per field ("epochs 2 -> 3"):
// the Trainer logs them as it restores, --dry-run shows them.
std::vector<std::string> resume_changes(const TrainConfig& saved, const TrainConfig& cfg);

}  // namespace resumable
