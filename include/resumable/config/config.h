// TrainConfig: every knob of a run, declared once in a field table that drives JSON parsing, the
// command line, `--help`, validation and the config comparison done on resume.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "resumable/util/errors.h"

namespace resumable {

struct TrainConfig {
  // Grouped by topic as the field table and `--help` are (ConfigTopic). A member whose key was
  // renamed keeps its old spelling until the files that use it move on; its comment names the key.

  // --- model architecture (must equal a checkpoint's to resume from it)
  int64_t d_model = 128;         // width of embeddings and attention
  int64_t heads = 4;             // attention heads; divides d_model
  int64_t encoder_layers = 2;    // Transformer encoder blocks
  int64_t decoder_layers = 2;    // Transformer decoder blocks
  int64_t ff_dim = 512;          // hidden width of each feed-forward block
  double dropout = 0.1;          // dropout probability in attention, FFN and embeddings
  std::string target_order = "left_to_right";  // or right_to_left: the order the decoder reads phonemes in

  // --- data
  std::string data = "data/cmudict.dict";  // CMUdict file (scripts/setup links Debian's copy)
  double val_fraction = 0.05;    // share of distinct words held out for validation
  double test_fraction = 0.05;   // share of distinct words held out for the test split
  int64_t limit_words = 0;       // key max_train_words: use only N training words (0 = all): quick tests
  bool length_bucketing = true;  // batch words of similar length together (less padding)
  int64_t seed = 1234;           // model init, dropout and data order

  // --- schedule and optimizer
  int64_t epochs = 3;            // passes over the training split
  int64_t batch_size = 256;      // samples per optimizer step, summed over all ranks
  double lr = 1e-3;              // peak learning rate after warmup
  double min_lr = 1e-5;          // learning rate at the end of the cosine decay
  int64_t warmup_steps = 0;      // linear warmup in optimizer steps (wins over warmup_epochs)
  double warmup_epochs = 0.5;    // linear warmup in epochs, used when warmup_steps is 0
  int64_t total_steps = 0;       // schedule length in steps; 0 = epochs * steps per epoch
  double time_budget_minutes = 0; // fit the epochs to this much wall-clock training (0 = off)
  double weight_decay = 0.01;    // AdamW decoupled weight decay
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.98;
  double adam_eps = 1e-9;
  double grad_clip = 1.0;        // max global gradient norm; 0 disables clipping
  double label_smoothing = 0.1;  // label smoothing of the cross-entropy

  // --- evaluation and best.pt
  int64_t eval_batch_size = 512; // words per rank per evaluation batch
  int64_t eval_every_epochs = 1; // validate after every N epochs
  int64_t eval_limit = 0;        // key max_eval_words: evaluate only N words of a split (0 = all)
  int64_t beam_size = 1;         // hypotheses per word in decoding (1 = greedy)
  std::string best_metric = "val_loss";  // val_loss | val_wer | val_per | val_token_acc
  std::string best_mode = "auto";        // min | max | auto (max for accuracy, else min)

  // --- checkpointing and resume
  std::string run_dir;           // where a run writes everything; empty = runs/<config name>
  int64_t save_every_steps = 0;  // save every N global steps (0 = off)
  int64_t save_every_epochs = 1; // save after every N epochs (0 = off)
  double save_every_minutes = 0; // save when this many minutes passed since the last save (0 = off)
  int64_t keep_last = 3;         // numbered step-*.pt snapshots to keep (best/last always kept)
  int64_t keep_every = 0;        // key keep_every_steps: also keep snapshots at multiples of N steps (0 = off)
  bool async_save = true;        // rank 0 writes periodic checkpoints on a background thread
  double save_timeout_s = 1800;  // key save_timeout_seconds: longest the other ranks wait for rank 0's save (0 = no limit)
  int64_t max_failed_saves = 3;  // stop after this many consecutive failed periodic saves
  std::string resume_from = "auto";      // key resume: auto | never | PATH
  std::string init_from;                 // load weights only from this checkpoint (fine-tuning)
  bool force = false;                    // with resume=never: set an existing run aside
  int64_t proof_batches = 4;     // next global batches each checkpoint records for the resume proof (0 = none)
  bool allow_data_drift = false; // a resume may draw other batches than its checkpoint recorded

  // --- stopping early (the LR schedule keeps its length)
  int64_t max_steps = 0;         // stop after this global step without changing the schedule (0 = off)
  std::string deadline;          // the job's end: seconds from the start or a local ISO time ("" = Slurm's)
  double deadline_margin_s = 60; // key deadline_margin_seconds: kept free before the deadline beyond two saves and a step
  double deadline_refresh_s = 60; // key deadline_refresh_seconds: how often Slurm's end time is read again

  // --- distributed and hardware
  std::string device = "auto";   // cpu | cuda | auto
  std::string amp = "none";      // none | bf16 | fp16 (fp16 uses the dynamic loss scaler) | auto
  std::string attention = "auto";  // fused | math | auto (model/attention_kernel.h)
  int64_t threads = 0;           // intra-op threads per rank; 0 = cores / ranks on this node
  std::string cpu_kernels = "auto";  // auto | default | avx2 | avx512: ATen's CPU kernel set (cpu_kernels.h)
  double timeout_s = 600;        // key timeout_seconds: collective and rendezvous timeout: a dead peer fails, never hangs
  int64_t bucket_mb = 25;        // key bucket_mib: gradient bucket size of the DDP reducer in MiB

  // --- logging
  int64_t log_every_steps = 50;  // progress line every N steps

  // Name used for the default run directory: the config file's stem, or "default".
  std::string name = "default";

  // The resolved run directory.
  std::string resolved_run_dir() const;
  // "min" or "max", resolving best_mode=auto from the metric.
  std::string resolved_best_mode() const;
};

// How a field is treated when a run resumes with a config that differs from the saved one.
enum class FieldRole {
  kArchitecture,  // must be equal: a difference is an error
  kData,          // defines the training set and its order: a difference is an error
  kSchedule,      // length of training: the LR schedule is re-planned
  kTuning,        // may change with a warning (batch size, LR, ...)
  kControl,       // run control: may change silently
  kInvocation,    // applies to one invocation only: never taken over from a saved config
};

// What a field is about: the groups of `--help` and of the configuration reference, in this order.
enum class ConfigTopic {
  kModel,
  kData,
  kSchedule,
  kEvaluation,
  kCheckpointing,
  kStopping,
  kDistributed,
  kLogging,
};

struct ConfigTopicInfo {
  ConfigTopic topic;
  std::string name;   // "checkpointing"
  std::string title;  // "Checkpointing and resume": the heading of its group
};
// Every topic, in the order of `--help`.
const std::vector<ConfigTopicInfo>& config_topics();
const ConfigTopicInfo& topic_info(ConfigTopic topic);

// The naming rule: the flag is the key with dashes (--max-train-words for max_train_words); a
// boolean also takes --no-KEY; a duration or interval names its unit last (_seconds, _minutes,
// _steps, _epochs). A key renamed to follow it keeps its old spelling in `old_names` for one
// release: a config file or flag that uses one is read, with a warning naming the new one, and a
// checkpoint's saved config (written by an older trainer) is read with a note in the resume log.
struct ConfigField {
  std::string name;  // JSON key; the flag is --name with '_' as '-'
  std::string flag;  // command-line flag without dashes
  std::string help;
  FieldRole role;
  ConfigTopic topic;
  std::vector<std::string> old_names;  // keys it had before (their flags: the same with dashes)
  std::variant<int64_t TrainConfig::*, double TrainConfig::*, bool TrainConfig::*,
               std::string TrainConfig::*>
      member;
  // Returns "" when the value is acceptable, else what was expected ("an integer >= 1").
  std::function<std::string(const TrainConfig&)> check;
};

// The table; its order is the order of --help and of the JSON dump.
const std::vector<ConfigField>& config_fields();

// The field a key or flag names (either spelling, "max_train_words" or "max-train-words"), or
// nullptr. `renamed` is set when it is an old name (ConfigField::old_names).
const ConfigField* find_config_field(const std::string& key_or_flag, bool* renamed = nullptr);

// The one-line warnings for an old spelling, naming the new one:
// "x.json: key 'limit_words' is now 'max_train_words' (the old name still works in this release)".
std::string renamed_key_warning(const std::string& origin, const std::string& old_name, const ConfigField& f);
std::string renamed_flag_warning(const std::string& old_flag, const ConfigField& f);

// How config_from_json() takes a key of ConfigField::old_names.
enum class OldKeys {
  kWarn,   // a file someone wrote: read, with a warning naming the new key
  kQuiet,  // a checkpoint's saved config, written by an older trainer: read as it is (saved_config() notes it)
};

// Reads a JSON config file over `base`. Throws ConfigError naming the file and field. A top-level
// "description" (text) says what the config is for: `trainer --help` lists it; training ignores it.
TrainConfig load_config_file(const std::string& path, TrainConfig base = {});
// Applies a JSON object (e.g. saved in a checkpoint) over `base`; `origin` names it in errors.
TrainConfig config_from_json(const nlohmann::json& j, const std::string& origin, TrainConfig base = {},
                             OldKeys old_keys = OldKeys::kWarn);
// The key that is not a config field but says what a config file is for.
inline constexpr char kDescriptionKey[] = "description";
// A config file of the project's configs/ folder, for `trainer --help`.
struct ConfigFileInfo {
  std::string path;
  std::string name;         // the file's stem: the default run directory is runs/<name>
  std::string description;  // its "description"; what is wrong with the file when it cannot be read
};
// The configs shipped with this trainer: configs/ beside the folder of the running binary
// (build/trainer in a clone, bin/trainer in the container image), else ./configs; "" if neither.
std::string shipped_configs_dir();
// Every *.json in `dir`, sorted by name.
std::vector<ConfigFileInfo> list_config_files(const std::string& dir);

// Sets one field, named by its key or flag (the new spelling), from its textual value (command
// line). Throws ConfigError naming the flag.
void set_field_from_string(TrainConfig& cfg, const std::string& name, const std::string& value,
                           const std::string& origin);
// Checks every field's range and the cross-field rules; throws ConfigError on the first problem.
void validate(const TrainConfig& cfg, const std::string& origin);
// target_order says the decoder reads phonemes last to first.
inline bool targets_right_to_left(const TrainConfig& cfg) { return cfg.target_order == "right_to_left"; }

nlohmann::json config_to_json(const TrainConfig& cfg);
// JSON text of one field's value.
std::string field_value_text(const TrainConfig& cfg, const ConfigField& f);

struct ConfigDifference {
  std::string field;
  std::string saved;
  std::string given;
  FieldRole role;
};
// Fields whose values differ between a saved and a given config.
std::vector<ConfigDifference> diff_configs(const TrainConfig& saved, const TrainConfig& given);

}  // namespace resumable
