// The full check of a checkpoint before it is trusted: integrity and layout (summarize), then the
// model and optimizer states loaded into a model built from the saved config and vocabulary, so a
// tensor of the wrong shape, dtype or name is found before a resume commits to the file.
#pragma once

#include "resumable/data/vocabulary.h"
#include "resumable/model/model.h"
#include "resumable/training/checkpoint_schema.h"

namespace resumable {

// Throws CheckpointError naming the file and field.
CheckpointSummary verify_checkpoint(const LoadedCheckpoint& ck);

// What a checkpoint's model needs to be used without its run: the saved config and vocabularies,
// and the model built from them with the saved weights (on the CPU, in eval mode).
struct SavedModel {
  TrainConfig config;
  Vocabulary graphemes, phonemes;
  G2PTransformer model{nullptr};
};
SavedModel load_saved_model(const LoadedCheckpoint& ck);

}  // namespace resumable
