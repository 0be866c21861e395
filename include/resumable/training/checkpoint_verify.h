// The full check of a checkpoint before it is trusted: integrity and layout (summarize), then the
// model and optimizer states loaded into a model built from the saved config and vocabulary, so a
// tensor of the wrong shape, dtype or name is found before a resume commits to the file.
#pragma once

#include <cmath>
#include <string>

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
// An ensemble member: the model of the checkpoint at `path`, whose vocabularies must be `graphemes`
// and `phonemes` (those of `reference`, named in the error), so that ids mean the same symbols in
// every member. Throws CheckpointError otherwise.
SavedModel load_ensemble_member(const std::string& path, const Vocabulary& graphemes, const Vocabulary& phonemes,
                                const std::string& reference);

// `ckpt verify --deep`: the resume proof's probe loss recomputed on the CPU from the checkpoint's
// weights and the training data (the saved config's file, or `data_path`), against the recorded
// one. Throws CheckpointError when the data is not the run's (fingerprint, vocabulary).
struct DeepVerification {
  bool recorded = false;  // the file holds a probe (trainers before the resume proof wrote none)
  double recorded_loss = 0, recomputed_loss = 0, tolerance = 0;
  int64_t samples = 0, tokens = 0;
  std::string recorded_on;  // device of the save
  double last_loss = 0;     // the last step's training loss (dropout on: not recomputable)
  std::string data;         // the data file used
  bool ok() const { return !recorded || std::abs(recomputed_loss - recorded_loss) <= tolerance; }
};
DeepVerification deep_verify_checkpoint(const LoadedCheckpoint& ck, const std::string& data_path = "");

}  // namespace resumable
