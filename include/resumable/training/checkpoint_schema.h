// What a trainer checkpoint holds: a named map of components (torchtitan's Stateful map), each
// saved and loaded by one pair of functions and versioned on its own. Saving, loading, the summary
// (`ckpt info`, `ckpt list`), `ckpt verify`, `ckpt diff` and `ckpt export` all walk the one table
// below; no component's key is spelled anywhere else.
//
// Versions: a component whose layout changes gets the next version here. A newer trainer loads
// every older version (a field added later takes its documented default, and the log says so); a
// file whose component is newer than this trainer's is refused: "written by trainer X, this is Y:
// upgrade". Files that predate versions are version 1 throughout.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "resumable/checkpoint/checkpoint_file.h"
#include "resumable/checkpoint/checkpoint_state.h"
#include "resumable/config/config.h"

namespace resumable {

// The top-level keys, spelled here only.
namespace ckpt_key {
// components, in the order they are saved and loaded
inline constexpr char kConfig[] = "config";
inline constexpr char kVocabulary[] = "vocabulary";
inline constexpr char kData[] = "data";
inline constexpr char kModel[] = "model";
inline constexpr char kOptimizer[] = "optimizer";
inline constexpr char kLrScheduler[] = "lr_scheduler";
inline constexpr char kLossScaler[] = "loss_scaler";
inline constexpr char kSampler[] = "sampler";
inline constexpr char kTrainState[] = "train_state";
inline constexpr char kHistory[] = "history";
inline constexpr char kRng[] = "rng";
inline constexpr char kResumeProof[] = "resume_proof";
// the file's own
inline constexpr char kFormatVersion[] = "format_version";
inline constexpr char kTrainerVersion[] = "trainer_version";
inline constexpr char kWorldSize[] = "world_size";
inline constexpr char kComponentVersions[] = "component_versions";
}  // namespace ckpt_key

// What `ckpt info`/`ckpt list` and the resume log show of a checkpoint; filled by the components'
// checks, which also refuse anything out of range.
struct CheckpointSummary {
  std::string path;
  std::string checksum;
  size_t bytes = 0;
  int64_t format_version = 0;
  std::string trainer_version;
  std::map<std::string, int64_t> component_versions;
  int64_t world_size = 0;       // ranks that saved it
  int64_t global_step = 0;
  int64_t epoch = 0;            // epochs completed
  int64_t epoch_cursor = 0;     // samples of the current epoch consumed
  int64_t dataset_size = 0;
  int64_t sampler_epoch = 0;    // must equal epoch
  int64_t schedule_step = 0;
  int64_t total_steps = 0;      // of the LR schedule
  double lr = 0;                // LR of the next step
  bool has_best = false;
  double best_metric = 0;
  int64_t best_step = -1;
  bool eval_pending = false;
  size_t history_steps = 0;
  size_t proof_batches = 0;     // next global batches the resume proof recorded (0: none)
  size_t history_epochs = 0;
  size_t history_evals = 0;
  std::vector<int64_t> resumed_at_step;
  // the latest evaluation, if any
  double last_val_loss = 0, last_val_wer = 0, last_val_per = 0;
  int64_t parameters = 0;       // model parameter elements
  int64_t graphemes = 0, phonemes = 0;  // vocabulary sizes
};

struct ComponentSpec {
  const char* name;
  int64_t version;  // this trainer's
  const char* holds;  // for people (`ckpt info`, docs/checkpoints.md)
  // Layout and range checks of the loaded component, filling what the summary shows of it.
  // Throws CheckpointError naming the field.
  void (*check)(const StateReader& component, CheckpointSummary& summary);
  // Added after files were written without it: such files lack it (version 0), and their loads
  // go on without it (the note says so).
  bool optional = false;
};
const std::vector<ComponentSpec>& checkpoint_components();

// Each component's version in `ck` (1 where the file predates versions, 0 for an optional
// component the file lacks). Throws CheckpointError
// (kIncompatible) for a component newer than this trainer's.
std::map<std::string, int64_t> component_versions(const LoadedCheckpoint& ck);

// Reads and checks every component: CheckpointError "PATH: field 'x.y': problem" on the first
// missing, mistyped or out-of-range field, or positions that disagree across components.
CheckpointSummary summarize_checkpoint(const LoadedCheckpoint& ck);

// The config a checkpoint was saved with, parsed and validated; CheckpointError if it is not one.
// Keys added after the file was written take their defaults, and keys it holds under a former name
// (ConfigField::old_names) are read under today's, both said in `notes` when given.
TrainConfig saved_config(const LoadedCheckpoint& ck, std::vector<std::string>* notes = nullptr);

// A live component of a run: how it saves itself and how it loads (adding to `notes` what an
// older version lacked and got by default).
struct Stateful {
  std::function<c10::IValue()> state_dict;
  std::function<void(const StateReader&, std::vector<std::string>& notes)> load_state_dict;
};
using StatefulMap = std::map<std::string, Stateful>;

// The checkpoint of a run: every component of the table from `live` (all must be there), and the
// file's metadata.
StateDict save_components(const StatefulMap& live, int64_t world_size);
// Loads every component of the table into `live`, in the table's order.
void load_components(const LoadedCheckpoint& ck, const StatefulMap& live, std::vector<std::string>& notes);

}  // namespace resumable
