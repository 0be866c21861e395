// The full check of a checkpoint before it is trusted: integrity and layout (summarize), then the
// model and optimizer states loaded into a model built from the saved config and vocabulary, so a
// tensor of the wrong shape, dtype or name is found before a resume commits to the file.
#pragma once

#include "resumable/training/checkpoint_summary.h"

namespace resumable {

// Throws CheckpointError naming the file and field.
CheckpointSummary verify_checkpoint(const LoadedCheckpoint& ck);

}  // namespace resumable
