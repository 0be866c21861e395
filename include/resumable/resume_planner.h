// Which checkpoint a run starts from, decided by rank 0 and agreed by all ranks:
//   --resume auto   last.pt if it reads and verifies, else the newest good checkpoint (saying
//                   which were skipped and why); none at all: a fresh start. On a terminal it
//                   asks first; in batch jobs it never waits for input.
//   --resume never  a fresh start; refused where checkpoints exist unless --force, which moves
//                   them aside (nothing is deleted).
//   --resume PATH   exactly that file.
//   --init-from F   weights only, for fine-tuning (when the run has no checkpoint of its own).
// Then every rank loads the chosen file and rank 0 confirms all hold the same checksum.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "resumable/checkpoint_file.h"
#include "resumable/config.h"

namespace resumable {

class Distributed;

struct ResumePlan {
  enum class Kind { kFresh, kResume, kInitFrom };
  Kind kind = Kind::kFresh;
  std::optional<LoadedCheckpoint> checkpoint;  // loaded and verified on every rank
};

// For evaluation: --resume PATH, else the run's best.pt, else its newest good checkpoint.
ResumePlan plan_resume(const TrainConfig& cfg, Distributed& dist, bool for_evaluation);

// "epoch E, step S" of a loaded checkpoint, for messages.
std::string position_text(const LoadedCheckpoint& ck);

}  // namespace resumable
