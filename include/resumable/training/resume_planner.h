// Which checkpoint a run starts from, decided by rank 0 under the run directory's lock and agreed
// by all ranks:
//   --resume auto   last.pt if it reads and verifies, else the newest good checkpoint (saying
//                   which were skipped and why; only damaged files are skipped: a file the file
//                   system refuses or a newer format stops the run, touching nothing); none at
//                   all: a fresh start. On a terminal it asks first; in batch jobs it never waits.
//   --resume never  a fresh start; refused where checkpoints exist unless --force, which moves
//                   them aside (nothing is deleted).
//   --resume PATH   that file, or, once this run has saved checkpoints that descend from it (a
//                   restart with the same flags), the newest of those.
//   --init-from F   weights only, for fine-tuning (when the run has no checkpoint of its own).
// Then every rank loads the chosen file and rank 0 confirms all hold the same checksum.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "resumable/checkpoint/checkpoint_file.h"
#include "resumable/config/config.h"
#include "resumable/checkpoint/run_directory_lock.h"

namespace resumable {

class Distributed;

struct ResumePlan {
  enum class Kind { kFresh, kResume, kInitFrom };
  Kind kind = Kind::kFresh;
  std::optional<LoadedCheckpoint> checkpoint;  // loaded and verified on every rank
  // Rank 0 only: the lock held for the job's life, and the lineage the run's saves carry on.
  std::unique_ptr<RunDirectoryLock> lock;
  int64_t segment = 1;                        // this launch's segment (CheckpointMeta::segment)
  std::vector<CheckpointAncestor> resumed_from;  // the timeline's resumes, this one included
  std::string checkpoints_set_aside;             // where an earlier run's checkpoints went (a new run starts)
};

struct ResumeOptions {
  bool for_evaluation = false;  // --eval: PATH, else best.pt, else the newest good; no lock
};

// Collective. Rank 0 waits up to a minute for a tool (`trainer ckpt clean`) holding the run
// directory's lock. Throws on every rank alike when rank 0 cannot decide (the lock is held by
// another job: RunDirectoryBusy; no usable checkpoint: CheckpointError).
ResumePlan plan_resume(const TrainConfig& cfg, Distributed& dist, const ResumeOptions& options);

// Where a start would stop, as main() reports it: the one-line message and the exit code.
struct Refusal {
  std::string message;
  int exit_code = 1;
};
// The refusal an error of the planning stands for (ConfigError and DataError 2, SaveError 74, 1 else).
Refusal refusal_of(const std::exception& e);

// What --dry-run shows of the decision besides the plan.
struct ResumePreview {
  LockProbe lock;                    // the run directory's lock as it is (not taken)
  bool decided = false;              // the files were read and a start would go this way
  bool would_ask = false;            // on this terminal a start asks before it resumes
  std::vector<std::string> skipped;  // damaged checkpoints a start passes over
  std::optional<Refusal> refusal;    // the first thing a start would stop at
};

// plan_resume's decision as this process alone makes it, changing nothing on disk (--dry-run,
// --print-config): the lock is only probed (held: a refusal), checkpoints a start would move aside
// stay (`checkpoints_set_aside` names where they would go), no terminal is asked, and whatever a
// start would stop at is `preview.refusal` instead of an exception. The plan holds no lock.
ResumePlan preview_resume(const TrainConfig& cfg, const ResumeOptions& options, ResumePreview& preview);

// "epoch E, step S" of a loaded checkpoint, for messages.
std::string position_text(const LoadedCheckpoint& ck);

}  // namespace resumable
