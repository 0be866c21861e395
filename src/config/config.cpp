#include "resumable/config/config.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "resumable/training/deadline.h"
#include "resumable/util/logging.h"

namespace resumable {
namespace {

using json = nlohmann::json;

// The field type behind a member pointer (decltype(cfg.*m) trips GCC 12 in generic lambdas).
template <class M>
struct member_type;
template <class C, class T>
struct member_type<T C::*> {
  using type = T;
};

// --- checks used by the table: each returns "" or what was expected.
std::function<std::string(const TrainConfig&)> int_at_least(int64_t TrainConfig::*m, int64_t lo) {
  return [m, lo](const TrainConfig& c) {
    return c.*m >= lo ? std::string() : "an integer >= " + std::to_string(lo);
  };
}
std::function<std::string(const TrainConfig&)> number_in(double TrainConfig::*m, double lo, double hi,
                                                          bool hi_open) {
  return [=](const TrainConfig& c) {
    double v = c.*m;
    bool ok = std::isfinite(v) && v >= lo && (hi_open ? v < hi : v <= hi);
    std::ostringstream s;
    s << "a number in [" << lo << ", " << hi << (hi_open ? ")" : "]");
    return ok ? std::string() : s.str();
  };
}
std::function<std::string(const TrainConfig&)> positive(double TrainConfig::*m) {
  return [m](const TrainConfig& c) {
    return (std::isfinite(c.*m) && c.*m > 0) ? std::string() : std::string("a number > 0");
  };
}
std::function<std::string(const TrainConfig&)> one_of(std::string TrainConfig::*m,
                                                       std::vector<std::string> choices) {
  return [m, choices](const TrainConfig& c) {
    for (const auto& x : choices)
      if (c.*m == x) return std::string();
    std::string s = "one of";
    for (size_t i = 0; i < choices.size(); ++i) s += (i ? "|" : " ") + choices[i];
    return s;
  };
}
std::function<std::string(const TrainConfig&)> any() {
  return [](const TrainConfig&) { return std::string(); };
}

template <class T>
ConfigField field(const char* name, T TrainConfig::*m, FieldRole role, const char* help,
                  std::function<std::string(const TrainConfig&)> check, std::vector<std::string> old_names = {}) {
  std::string f = name;
  for (auto& ch : f)
    if (ch == '_') ch = '-';
  return ConfigField{name, f, help, role, ConfigTopic::kModel, std::move(old_names), m, std::move(check)};
}

struct Section {
  ConfigTopic topic;
  std::vector<ConfigField> fields;
};

// The table, by topic: the order of --help and of the configuration reference.
std::vector<Section> make_sections() {
  using R = FieldRole;
  using C = TrainConfig;
  using T = ConfigTopic;
  return {
      {T::kModel,
       {
           field("d_model", &C::d_model, R::kArchitecture, "model width", int_at_least(&C::d_model, 8)),
           field("heads", &C::heads, R::kArchitecture, "attention heads (must divide d_model)",
                 int_at_least(&C::heads, 1)),
           field("encoder_layers", &C::encoder_layers, R::kArchitecture, "Transformer encoder blocks",
                 int_at_least(&C::encoder_layers, 1)),
           field("decoder_layers", &C::decoder_layers, R::kArchitecture, "Transformer decoder blocks",
                 int_at_least(&C::decoder_layers, 1)),
           field("ff_dim", &C::ff_dim, R::kArchitecture, "feed-forward hidden width", int_at_least(&C::ff_dim, 1)),
           field("dropout", &C::dropout, R::kTuning, "dropout probability", number_in(&C::dropout, 0, 1, true)),
           field("target_order", &C::target_order, R::kArchitecture,
                 "left_to_right | right_to_left: the order the decoder produces phonemes in (words still read and "
                 "print left to right); an ensemble of both reranks each direction's hypotheses with the other",
                 one_of(&C::target_order, {"left_to_right", "right_to_left"})),
       }},
      {T::kData,
       {
           field("data", &C::data, R::kControl, "CMUdict file", any()),
           field("val_fraction", &C::val_fraction, R::kData, "share of words held out for validation",
                 number_in(&C::val_fraction, 0.0001, 0.5, false)),
           field("test_fraction", &C::test_fraction, R::kData, "share of words held out for test",
                 number_in(&C::test_fraction, 0.0001, 0.5, false)),
           field("max_train_words", &C::limit_words, R::kData, "use only the first N training words (0 = all)",
                 int_at_least(&C::limit_words, 0), {"limit_words"}),
           field("length_bucketing", &C::length_bucketing, R::kData, "batch words of similar length together",
                 any()),
           field("seed", &C::seed, R::kData, "seed of init, dropout and data order", int_at_least(&C::seed, 0)),
       }},
      {T::kSchedule,
       {
           field("epochs", &C::epochs, R::kSchedule, "passes over the training split", int_at_least(&C::epochs, 1)),
           field("batch_size", &C::batch_size, R::kTuning,
                 "samples per optimizer step, summed over all ranks (the global batch)",
                 int_at_least(&C::batch_size, 1)),
           field("lr", &C::lr, R::kTuning, "peak learning rate", positive(&C::lr)),
           field("min_lr", &C::min_lr, R::kTuning, "final learning rate of the cosine decay",
                 number_in(&C::min_lr, 0, 1e3, false)),
           field("warmup_steps", &C::warmup_steps, R::kSchedule, "linear warmup steps (wins over warmup_epochs)",
                 int_at_least(&C::warmup_steps, 0)),
           field("warmup_epochs", &C::warmup_epochs, R::kSchedule, "linear warmup in epochs",
                 number_in(&C::warmup_epochs, 0, 1e6, false)),
           field("total_steps", &C::total_steps, R::kSchedule,
                 "schedule length in steps (0 = from epochs); the way to a shorter run whose LR still decays to "
                 "min_lr",
                 int_at_least(&C::total_steps, 0)),
           field("time_budget_minutes", &C::time_budget_minutes, R::kSchedule,
                 "minutes of training, all resumes together: the epochs are fitted to them at every epoch end, "
                 "by the measured rate, so the LR decays just as they run out (0 = off: --epochs)",
                 number_in(&C::time_budget_minutes, 0, 1e7, false)),
           field("weight_decay", &C::weight_decay, R::kTuning, "AdamW weight decay",
                 number_in(&C::weight_decay, 0, 10, false)),
           field("adam_beta1", &C::adam_beta1, R::kTuning, "AdamW beta1", number_in(&C::adam_beta1, 0, 1, true)),
           field("adam_beta2", &C::adam_beta2, R::kTuning, "AdamW beta2", number_in(&C::adam_beta2, 0, 1, true)),
           field("adam_eps", &C::adam_eps, R::kTuning, "AdamW epsilon", positive(&C::adam_eps)),
           field("grad_clip", &C::grad_clip, R::kTuning, "max gradient norm (0 = off)",
                 number_in(&C::grad_clip, 0, 1e9, false)),
           field("label_smoothing", &C::label_smoothing, R::kTuning, "label smoothing",
                 number_in(&C::label_smoothing, 0, 1, true)),
       }},
      {T::kEvaluation,
       {
           field("eval_batch_size", &C::eval_batch_size, R::kControl, "words per rank per evaluation batch",
                 int_at_least(&C::eval_batch_size, 1)),
           field("eval_every_epochs", &C::eval_every_epochs, R::kControl, "validate every N epochs",
                 int_at_least(&C::eval_every_epochs, 1)),
           field("max_eval_words", &C::eval_limit, R::kControl, "evaluate only the first N words of a split (0 = all)",
                 int_at_least(&C::eval_limit, 0), {"eval_limit"}),
           field("beam_size", &C::beam_size, R::kControl, "beam search width for evaluation (1 = greedy)",
                 int_at_least(&C::beam_size, 1)),
           field("best_metric", &C::best_metric, R::kControl, "metric choosing best.pt",
                 one_of(&C::best_metric, {"val_loss", "val_wer", "val_per", "val_token_acc"})),
           field("best_mode", &C::best_mode, R::kControl, "min | max | auto",
                 one_of(&C::best_mode, {"min", "max", "auto"})),
       }},
      {T::kCheckpointing,
       {
           field("run_dir", &C::run_dir, R::kControl, "run directory (default runs/<config name>)", any()),
           field("save_every_steps", &C::save_every_steps, R::kControl, "save every N steps (0 = off)",
                 int_at_least(&C::save_every_steps, 0)),
           field("save_every_epochs", &C::save_every_epochs, R::kControl, "save every N epochs (0 = off)",
                 int_at_least(&C::save_every_epochs, 0)),
           field("save_every_minutes", &C::save_every_minutes, R::kControl, "save every M minutes (0 = off)",
                 number_in(&C::save_every_minutes, 0, 1e6, false)),
           field("keep_last", &C::keep_last, R::kControl, "numbered snapshots to keep",
                 int_at_least(&C::keep_last, 0)),
           field("keep_every_steps", &C::keep_every, R::kControl,
                 "also keep the snapshots whose step is a multiple of N (0 = off)", int_at_least(&C::keep_every, 0),
                 {"keep_every"}),
           field("async_save", &C::async_save, R::kControl,
                 "write periodic checkpoints in the background (the step pays only for a snapshot)", any()),
           field("save_timeout_seconds", &C::save_timeout_s, R::kControl,
                 "seconds the other ranks wait for rank 0 to save a checkpoint, while it is alive (0 = no limit)",
                 number_in(&C::save_timeout_s, 0, 1e7, false), {"save_timeout_s"}),
           field("max_failed_saves", &C::max_failed_saves, R::kControl,
                 "stop after N failed saves in a row; between them periodic saves back off (10 s, 20 s, 40 s, ... "
                 "up to 5 min), so a storage hiccup of a few seconds costs one retry",
                 int_at_least(&C::max_failed_saves, 1)),
           field("resume", &C::resume_from, R::kInvocation,
                 "auto (the run directory's latest good checkpoint, if any) | never | PATH of a checkpoint", any(),
                 {"resume_from"}),
           field("init_from", &C::init_from, R::kInvocation, "load weights only from this checkpoint", any()),
           field("force", &C::force, R::kInvocation, "with --resume never: set an existing run's checkpoints aside",
                 any()),
           field("proof_batches", &C::proof_batches, R::kControl,
                 "next global batches each checkpoint records, and a resume checks (0 = none)",
                 int_at_least(&C::proof_batches, 0)),
           field("allow_data_drift", &C::allow_data_drift, R::kInvocation,
                 "resume although data, seed or batch size changed: the resume proof then warns instead of "
                 "stopping",
                 any()),
       }},
      {T::kStopping,
       {
           field("max_steps", &C::max_steps, R::kInvocation,
                 "stop after this global step (0 = off). Unlike max_steps in Lightning or Hugging Face, it does not "
                 "shorten the LR schedule, which still runs to epochs (or total_steps, or the time budget): a run "
                 "stopped here resumes on the same schedule. For a shorter run whose LR decays in full, lower "
                 "epochs or set total_steps",
                 int_at_least(&C::max_steps, 0)),
           field("deadline", &C::deadline, R::kInvocation,
                 "the job's end, seconds from the start or a local time YYYY-MM-DDTHH:MM[:SS]: save and exit 75 "
                 "before it (default: Slurm's end time, if any; none: no deadline)",
                 [](const TrainConfig& c) {
                   return c.deadline.empty() || c.deadline == "none" ||
                                  parse_deadline(c.deadline, WallClock::now())
                              ? std::string()
                              : std::string("seconds from the start (e.g. 3600), a local time "
                                            "YYYY-MM-DDTHH:MM[:SS] or none");
                 }),
           field("deadline_margin_seconds", &C::deadline_margin_s, R::kControl,
                 "seconds kept free before the deadline, beyond two saves and a step (at most a quarter of the "
                 "run's time)",
                 number_in(&C::deadline_margin_s, 0, 1e6, false), {"deadline_margin_s"}),
           field("deadline_refresh_seconds", &C::deadline_refresh_s, R::kControl,
                 "seconds between readings of Slurm's end time", number_in(&C::deadline_refresh_s, 1, 1e6, false),
                 {"deadline_refresh_s"}),
       }},
      {T::kDistributed,
       {
           field("device", &C::device, R::kControl, "cpu | cuda | auto",
                 one_of(&C::device, {"cpu", "cuda", "auto"})),
           field("amp", &C::amp, R::kTuning,
                 "mixed precision: none | bf16 | fp16 | auto (bf16 on a GPU or a CPU with native bf16, else none)",
                 one_of(&C::amp, {"none", "bf16", "fp16", "auto"})),
           field("attention", &C::attention, R::kTuning,
                 "attention kernel: fused (scaled_dot_product_attention) | math (matmuls and a softmax) | auto "
                 "(fused on a CPU; on a GPU the faster at the training shapes, timed at the run's start and kept)",
                 one_of(&C::attention, {"fused", "math", "auto"})),
           field("threads", &C::threads, R::kControl, "threads per rank (0 = cores / local ranks)",
                 int_at_least(&C::threads, 0)),
           field("cpu_kernels", &C::cpu_kernels, R::kControl,
                 "ATen's CPU kernel set: auto (the best this CPU runs) | default | avx2 | avx512; a set the CPU "
                 "lacks is refused at start",
                 one_of(&C::cpu_kernels, {"auto", "default", "avx2", "avx512"})),
           field("timeout_seconds", &C::timeout_s, R::kControl,
                 "collective and rendezvous timeout in seconds: a dead peer ends the run instead of hanging it",
                 number_in(&C::timeout_s, 1, 86400, false), {"timeout_s"}),
           field("bucket_mib", &C::bucket_mb, R::kControl, "DDP gradient bucket size in MiB",
                 int_at_least(&C::bucket_mb, 1), {"bucket_mb"}),
       }},
      {T::kLogging,
       {
           field("log_every_steps", &C::log_every_steps, R::kControl, "progress line every N steps",
                 int_at_least(&C::log_every_steps, 1)),
       }},
  };
}

std::vector<ConfigField> make_fields() {
  std::vector<ConfigField> out;
  for (auto& section : make_sections())
    for (auto& f : section.fields) {
      f.topic = section.topic;
      out.push_back(std::move(f));
    }
  return out;
}

// Command-line strings are bytes; the config is JSON text, which must be valid UTF-8. Asking the
// JSON writer itself keeps this check exactly as strict as the writing of checkpoints.
bool is_utf8(const std::string& s) {
  try {
    (void)json(s).dump();
    return true;
  } catch (const json::type_error&) {
    return false;
  }
}

std::string json_type_name(const json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer() || v.is_number_unsigned()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_null()) return "null";
  if (v.is_array()) return "an array";
  return "an object";
}

std::string short_dump(const json& v) {
  std::string s = v.dump();
  return s.size() > 40 ? s.substr(0, 37) + "..." : s;
}

std::string dashed(std::string key) {
  std::replace(key.begin(), key.end(), '_', '-');
  return key;
}

std::string renamed_text(const std::string& old_name, const ConfigField& f, bool flags) {
  return (flags ? "--" + dashed(old_name) + " is now --" + f.flag : "key '" + old_name + "' is now '" + f.name + "'") +
         " (the old name still works in this release)";
}

}  // namespace

const std::vector<ConfigTopicInfo>& config_topics() {
  using T = ConfigTopic;
  static const std::vector<ConfigTopicInfo> topics = {
      {T::kModel, "model", "Model (the architecture must equal the checkpoint's to resume from it)"},
      {T::kData, "data", "Data (a resume with other data or another seed is refused unless --allow-data-drift)"},
      {T::kSchedule, "schedule", "Schedule and optimizer"},
      {T::kEvaluation, "evaluation", "Evaluation and best.pt"},
      {T::kCheckpointing, "checkpointing", "Checkpointing and resume"},
      {T::kStopping, "stopping", "Stopping early (none of these shortens the LR schedule)"},
      {T::kDistributed, "distributed", "Distributed and hardware"},
      {T::kLogging, "logging", "Logging"},
  };
  return topics;
}

const ConfigTopicInfo& topic_info(ConfigTopic topic) {
  for (const auto& t : config_topics())
    if (t.topic == topic) return t;
  throw std::logic_error("config topic without an entry in config_topics()");
}

const std::vector<ConfigField>& config_fields() {
  static const std::vector<ConfigField> fields = make_fields();
  return fields;
}

const ConfigField* find_config_field(const std::string& key_or_flag, bool* renamed) {
  if (renamed) *renamed = false;
  for (const auto& f : config_fields())
    if (f.name == key_or_flag || f.flag == key_or_flag) return &f;
  for (const auto& f : config_fields())
    for (const auto& old : f.old_names)
      if (old == key_or_flag || dashed(old) == key_or_flag) {
        if (renamed) *renamed = true;
        return &f;
      }
  return nullptr;
}

std::string renamed_key_warning(const std::string& origin, const std::string& old_name, const ConfigField& f) {
  return origin + ": " + renamed_text(old_name, f, /*flags=*/false);
}

std::string renamed_flag_warning(const std::string& old_flag, const ConfigField& f) {
  return "command line: " + renamed_text(old_flag, f, /*flags=*/true);
}

std::string TrainConfig::resolved_run_dir() const { return run_dir.empty() ? "runs/" + name : run_dir; }

std::string TrainConfig::resolved_best_mode() const {
  if (best_mode != "auto") return best_mode;
  return best_metric == "val_token_acc" ? "max" : "min";
}

TrainConfig config_from_json(const json& j, const std::string& origin, TrainConfig cfg, OldKeys old_keys) {
  if (!j.is_object()) throw ConfigError(origin + ": expected a JSON object of config keys, got " + json_type_name(j));
  for (auto it = j.begin(); it != j.end(); ++it) {
    // Named references, not structured bindings: C++17 lambdas cannot capture those.
    const std::string& key = it.key();
    const json& value = it.value();
    if (key == kDescriptionKey) {  // what the file is for: listed by --help, not a setting
      if (!value.is_string())
        throw ConfigError(origin + ": field '" + key + "': expected a string (what this config is for), got " +
                          json_type_name(value) + " " + short_dump(value));
      continue;
    }
    bool renamed = false;
    const ConfigField* f = find_config_field(key, &renamed);
    if (!f || (!renamed && f->name != key) || key.find('-') != std::string::npos) {
      std::string hint = " (trainer --help lists the keys)";
      if (f) hint = " (keys spell '_' where flags spell '-': '" + f->name + "')";
      throw ConfigError(origin + ": unknown key '" + key + "'" + hint);
    }
    if (renamed) {
      if (j.contains(f->name))
        throw ConfigError(origin + ": keys '" + key + "' and '" + f->name + "' are one setting ('" + key +
                          "' is its old name): keep only '" + f->name + "'");
      if (old_keys == OldKeys::kWarn) warn_about_input(renamed_key_warning(origin, key, *f));
    }
    auto fail = [&](const std::string& expected) {
      throw ConfigError(origin + ": field '" + key + "': expected " + expected + ", got " +
                        json_type_name(value) + " " + short_dump(value));
    };
    std::visit(
        [&](auto m) {
          using T = typename member_type<decltype(m)>::type;
          if constexpr (std::is_same_v<T, bool>) {
            if (!value.is_boolean()) fail("a boolean");
            cfg.*m = value.get<bool>();
          } else if constexpr (std::is_same_v<T, int64_t>) {
            if (value.is_number_float()) {
              double d = value.get<double>();
              if (d != std::floor(d) || std::fabs(d) > 9e15) fail("an integer");
              cfg.*m = static_cast<int64_t>(d);
            } else if (value.is_number_unsigned()) {
              if (value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) fail("an integer");
              cfg.*m = static_cast<int64_t>(value.get<uint64_t>());
            } else if (value.is_number_integer()) {
              cfg.*m = value.get<int64_t>();
            } else {
              fail("an integer");
            }
          } else if constexpr (std::is_same_v<T, double>) {
            if (!value.is_number()) fail("a number");
            cfg.*m = value.get<double>();
          } else {
            if (!value.is_string()) fail("a string");
            cfg.*m = value.get<std::string>();
          }
        },
        f->member);
  }
  return cfg;
}

TrainConfig load_config_file(const std::string& path, TrainConfig base) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot open config file");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::parse_error& e) {
    // nlohmann's message carries the byte offset; keep it on one line.
    std::string what = e.what();
    auto pos = what.find("parse error");
    throw ConfigError(path + ": not valid JSON: " + (pos == std::string::npos ? what : what.substr(pos)));
  }
  TrainConfig cfg = config_from_json(j, path, std::move(base));
  std::string stem = path;
  if (auto slash = stem.find_last_of('/'); slash != std::string::npos) stem = stem.substr(slash + 1);
  if (auto dot = stem.find_last_of('.'); dot != std::string::npos && dot > 0) stem = stem.substr(0, dot);
  cfg.name = stem.empty() ? "default" : stem;
  return cfg;
}

std::string shipped_configs_dir() {
  // The real path of a directory, or "" when there is none.
  auto real_dir = [](const std::string& p) {
    char* r = ::realpath(p.c_str(), nullptr);
    std::string out = r ? r : "";
    std::free(r);
    DIR* d = out.empty() ? nullptr : ::opendir(out.c_str());
    if (d) ::closedir(d);
    return d ? out : std::string();
  };
  const std::string here = real_dir("configs");
  std::string exe(4096, '\0');
  ssize_t n = ::readlink("/proc/self/exe", exe.data(), exe.size() - 1);
  if (n > 0) {
    exe.resize(static_cast<size_t>(n));
    auto slash = exe.find_last_of('/');
    const std::string beside = real_dir((slash == std::string::npos ? std::string(".") : exe.substr(0, slash)) + "/../configs");
    // Named as the user would type it: relative when it is the working directory's configs/.
    if (!beside.empty()) return beside == here ? "configs" : beside;
  }
  return here.empty() ? "" : "configs";
}

std::vector<ConfigFileInfo> list_config_files(const std::string& dir) {
  std::vector<ConfigFileInfo> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (const dirent* e = ::readdir(d)) {
    std::string file = e->d_name;
    if (file.size() <= 5 || file.compare(file.size() - 5, 5, ".json") != 0) continue;
    ConfigFileInfo info{dir + "/" + file, file.substr(0, file.size() - 5), ""};
    try {
      std::ifstream in(info.path);
      json j = json::parse(in);
      if (j.is_object() && j.contains(kDescriptionKey) && j[kDescriptionKey].is_string())
        info.description = j[kDescriptionKey].get<std::string>();
      else
        info.description = "(no description)";
    } catch (const std::exception&) {
      info.description = "(not valid JSON)";
    }
    out.push_back(std::move(info));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

void set_field_from_string(TrainConfig& cfg, const std::string& name, const std::string& value,
                           const std::string& origin) {
  const ConfigField* f = find_config_field(name);
  if (!f) throw ConfigError(origin + ": unknown option '" + name + "'");
  auto fail = [&](const std::string& expected) {
    throw ConfigError(origin + ": --" + f->flag + ": expected " + expected + ", got '" + value + "'");
  };
  std::visit(
      [&](auto m) {
        using T = typename member_type<decltype(m)>::type;
        if constexpr (std::is_same_v<T, bool>) {
          if (value == "true" || value == "1" || value == "yes" || value == "on") cfg.*m = true;
          else if (value == "false" || value == "0" || value == "no" || value == "off") cfg.*m = false;
          else fail("true or false");
        } else if constexpr (std::is_same_v<T, int64_t>) {
          size_t used = 0;
          int64_t v = 0;
          try {
            v = std::stoll(value, &used);
          } catch (...) {
            fail("an integer");
          }
          if (used != value.size()) fail("an integer");
          cfg.*m = v;
        } else if constexpr (std::is_same_v<T, double>) {
          size_t used = 0;
          double v = 0;
          try {
            v = std::stod(value, &used);
          } catch (...) {
            fail("a number");
          }
          if (used != value.size()) fail("a number");
          cfg.*m = v;
        } else {
          cfg.*m = value;
        }
      },
      f->member);
}

void validate(const TrainConfig& cfg, const std::string& origin) {
  for (const auto& f : config_fields()) {
    if (auto m = std::get_if<std::string TrainConfig::*>(&f.member); m && !is_utf8(cfg.**m))
      throw ConfigError(origin + ": field '" + f.name + "': expected UTF-8 text, got bytes that are not");
    std::string expected = f.check(cfg);
    if (!expected.empty())
      throw ConfigError(origin + ": field '" + f.name + "': expected " + expected + ", got " +
                        field_value_text(cfg, f));
  }
  if (cfg.d_model % cfg.heads != 0)
    throw ConfigError(origin + ": field 'heads': expected a divisor of d_model=" + std::to_string(cfg.d_model) +
                      ", got " + std::to_string(cfg.heads));
  if (cfg.min_lr > cfg.lr)
    throw ConfigError(origin + ": field 'min_lr': expected a value <= lr=" + std::to_string(cfg.lr) +
                      ", got " + std::to_string(cfg.min_lr));
  if (cfg.time_budget_minutes > 0 && cfg.total_steps > 0)
    throw ConfigError(origin + ": fields 'time_budget_minutes' and 'total_steps': expected one of them, got both "
                      "(the budget fits the schedule's length)");
  if (cfg.val_fraction + cfg.test_fraction >= 0.9)
    throw ConfigError(origin + ": fields 'val_fraction' + 'test_fraction': expected a sum < 0.9");
  if (cfg.resume_from.empty())
    throw ConfigError(origin + ": field 'resume': expected auto, never or a checkpoint path, got \"\"");
  if (!cfg.init_from.empty() && cfg.resume_from != "auto" && cfg.resume_from != "never")
    throw ConfigError(origin + ": --init-from and --resume PATH exclude each other: pick one");
}

json config_to_json(const TrainConfig& cfg) {
  json j = json::object();
  for (const auto& f : config_fields())
    std::visit([&](auto m) { j[f.name] = cfg.*m; }, f.member);
  return j;
}

std::string field_value_text(const TrainConfig& cfg, const ConfigField& f) {
  std::string out;
  // replace: a message about a bad value must not itself fail on it.
  std::visit([&](auto m) { out = json(cfg.*m).dump(-1, ' ', false, json::error_handler_t::replace); }, f.member);
  return out;
}

std::vector<ConfigDifference> diff_configs(const TrainConfig& saved, const TrainConfig& given) {
  std::vector<ConfigDifference> out;
  for (const auto& f : config_fields()) {
    std::string a = field_value_text(saved, f), b = field_value_text(given, f);
    if (a != b) out.push_back({f.name, a, b, f.role});
  }
  return out;
}

}  // namespace resumable
