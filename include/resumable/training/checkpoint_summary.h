// A checkpoint's layout check and summary, readable without training: every section the trainer
// needs is present and typed right. verify_checkpoint() builds on it before a file is trusted for
// resume (so a file whose checksum holds but whose contents do not fit is "not good" and the
// fallback moves on) and for `trainer ckpt verify`.
#pragma once

#include <string>

#include "resumable/checkpoint/checkpoint_file.h"
#include "resumable/config/config.h"

namespace resumable {

struct CheckpointSummary {
  std::string path;
  std::string checksum;
  size_t bytes = 0;
  int64_t format_version = 0;
  std::string trainer_version;
  int64_t world_size = 0;       // ranks that saved it
  int64_t global_step = 0;
  int64_t epoch = 0;            // epochs completed
  int64_t epoch_cursor = 0;     // samples of the current epoch consumed
  int64_t dataset_size = 0;
  double lr = 0;                // LR of the next step
  bool has_best = false;
  double best_metric = 0;
  int64_t best_step = -1;
  size_t history_steps = 0;
  size_t history_evals = 0;
  int64_t parameters = 0;       // model parameter elements
};

// Throws CheckpointError "PATH: field 'x.y': problem" on the first missing or mistyped field.
CheckpointSummary summarize_checkpoint(const LoadedCheckpoint& ck);

// The config a checkpoint was saved with, parsed and validated; CheckpointError if it is not one.
TrainConfig saved_config(const LoadedCheckpoint& ck);

}  // namespace resumable
