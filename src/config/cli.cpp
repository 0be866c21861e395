#include "resumable/config/cli.h"

#include <algorithm>

#include <cxxopts.hpp>

#include "resumable/util/help_text.h"
#include "resumable/util/logging.h"

namespace resumable {
namespace {

const char* kAbout =
    "resumable: data-parallel Transformer G2P trainer with exact checkpoint/resume.\n"
    "Launch alone, under mpirun, torchrun or srun. Every config key is also a flag, the key with dashes\n"
    "(key max_train_words, flag --max-train-words); the command line wins over the config file. A boolean\n"
    "takes --KEY, --KEY=false, --KEY false or --no-KEY. Durations and intervals name their unit:\n"
    "_seconds, _minutes, _steps, _epochs.";

const char* kExitCodes =
    "Exit codes: 0 done, 1 runtime error, 2 bad config/flag/data, 69 run directory in use by another\n"
    "job (retry later), 74 checkpoint could not be saved, 75 stopped by a signal or the deadline after\n"
    "saving (requeue and resume), 76 another rank was lost and the survivors saved (restart).";

bool is_boolean(const ConfigField& f) { return std::holds_alternative<bool TrainConfig::*>(f.member); }

// "--async-save, --no-async-save", "--epochs N", "--lr X", "--device VALUE"
std::string flags_text(const ConfigField& f) {
  if (is_boolean(f)) return "--" + f.flag + ", --no-" + f.flag;
  if (std::holds_alternative<int64_t TrainConfig::*>(f.member)) return "--" + f.flag + " N";
  if (std::holds_alternative<double TrainConfig::*>(f.member)) return "--" + f.flag + " X";
  return "--" + f.flag + " VALUE";
}

struct ModeOption {
  const char* name;     // for cxxopts: "h,help"
  const char* flags;    // for --help
  const char* help;
  bool takes_value;
};

const std::vector<ModeOption>& mode_options() {
  static const std::vector<ModeOption> modes = {
      {"config", "--config FILE",
       "JSON config file (default: the embedded defaults); the shipped ones are listed below", true},
      {"eval", "--eval",
       "evaluate a checkpoint (--resume PATH, else best.pt/last.pt of the run) on the validation and the test "
       "split: one JSON line of metrics, no training",
       false},
      {"ensemble", "--ensemble FILE,...",
       "with --eval: more checkpoints whose models decode together with the evaluated one, their next-phoneme "
       "probabilities averaged",
       true},
      {"debug", "--debug",
       "debugging run (one process, no launcher needed): deterministic algorithms, autograd anomaly detection, "
       "evaluation on 256 words, saves in the training thread, a progress line every 10 steps",
       false},
      {"print-config", "--print-config", "print the resolved config as JSON and exit", false},
      {"dry-run", "--dry-run",
       "print what a start would do (config, resume plan, schedule, deadline) and exit 0; writes nothing", false},
      {"h,help", "-h, --help", "show this help", false},
      {"version", "--version", "print the trainer version", false},
  };
  return modes;
}

cxxopts::Options make_options() {
  cxxopts::Options o("trainer", kAbout);
  for (const auto& m : mode_options()) {
    if (m.takes_value) o.add_options("run")(m.name, m.help, cxxopts::value<std::string>());
    else o.add_options("run")(m.name, m.help);
  }
  for (const auto& f : config_fields()) {
    auto add = [&](const std::string& flag) {
      auto value = cxxopts::value<std::string>();
      if (is_boolean(f)) value->implicit_value("true");
      o.add_options("config keys")(flag, f.help, value);
    };
    add(f.flag);
    for (const auto& old : f.old_names) {
      std::string flag = old;
      std::replace(flag.begin(), flag.end(), '_', '-');
      add(flag);
    }
  }
  return o;
}

bool is_bool_literal(const std::string& s) {
  for (const char* b : {"true", "false", "1", "0", "yes", "no", "on", "off"})
    if (s == b) return true;
  return false;
}

// The forms of a boolean that cxxopts does not take, rewritten to --key=value: "--key false" (cxxopts
// reads the flag plus a stray "false") and "--no-key".
std::vector<std::string> normalize_booleans(int argc, const char* const* argv) {
  std::vector<std::string> out;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (i > 0 && arg.rfind("--", 0) == 0 && arg.find('=') == std::string::npos) {
      const ConfigField* f = find_config_field(arg.substr(2));
      if (f && is_boolean(*f) && i + 1 < argc && is_bool_literal(argv[i + 1])) {
        arg += std::string("=") + argv[++i];
      } else if (!f && arg.rfind("--no-", 0) == 0) {
        const ConfigField* negated = find_config_field(arg.substr(5));
        if (negated && is_boolean(*negated)) arg = "--" + arg.substr(5) + "=false";
        else if (negated)
          throw ConfigError("command line: " + arg + ": only a boolean key takes --no-KEY, and " + negated->name +
                            " is not one (see trainer --help)");
      }
    }
    out.push_back(arg);
  }
  return out;
}

std::string config_list_title(const std::string& dir) {
  return "Configs (--config " + dir + "/NAME.json)";
}

}  // namespace

std::string cli_help_text() {
  HelpPage page;
  page.usage = "trainer [--config FILE] [--KEY VALUE ...] [--eval [--ensemble FILES]] [--debug]\n"
               "               [--print-config]\n"
               "       trainer ckpt SUBCOMMAND ...  |  trainer predict ...";
  page.about = kAbout;
  HelpGroup run{"Run", {}};
  for (const auto& m : mode_options()) run.options.push_back({m.flags, m.help});
  page.groups.push_back(run);
  const TrainConfig defaults;
  for (const auto& topic : config_topics()) {
    HelpGroup g{topic.title, {}};
    for (const auto& f : config_fields())
      if (f.topic == topic.topic)
        g.options.push_back({flags_text(f), f.help + " [default " + field_value_text(defaults, f) + "]"});
    page.groups.push_back(g);
  }
  page.groups.push_back(
      {"Tools (each has --help)",
       {{"trainer ckpt list|info|verify|diff|clean|backup|export ...", "inspect and manage checkpoints"},
        {"trainer predict --checkpoint FILE [WORD...]", "pronounce words (stdin if none)"}}});
  if (std::string dir = shipped_configs_dir(); !dir.empty()) {
    HelpGroup g{config_list_title(dir), {}};
    for (const auto& c : list_config_files(dir)) g.options.push_back({c.name, c.description});
    page.groups.push_back(g);
  }
  std::string renamed;
  for (const auto& f : config_fields())
    for (const auto& old : f.old_names) renamed += (renamed.empty() ? "" : ", ") + old + "->" + f.name;
  page.footer = wrap_text("Renamed keys (their old names and flags still work in this release, with a warning): " +
                          renamed + ".") +
                "\n" + kExitCodes;
  return format_help(page);
}

bool CliArgs::overrides_field(const std::string& name) const {
  for (const auto& [k, v] : overrides)
    if (k == name) return true;
  return false;
}

std::vector<std::string> comma_separated(const std::string& text) {
  std::vector<std::string> out;
  for (size_t start = 0; start <= text.size();) {
    size_t end = std::min(text.find(',', start), text.size());
    if (end > start) out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

CliArgs parse_cli(int argc, const char* const* argv) {
  auto options = make_options();
  CliArgs args;
  try {
    std::vector<std::string> joined = normalize_booleans(argc, argv);
    std::vector<const char*> args_in;
    for (const auto& a : joined) args_in.push_back(a.c_str());
    auto result = options.parse(static_cast<int>(args_in.size()), args_in.data());
    if (!result.unmatched().empty())
      throw ConfigError("command line: unexpected argument '" + result.unmatched().front() +
                        "' (options take the form --key value)");
    args.help = result.count("help") > 0;
    args.version = result.count("version") > 0;
    args.eval = result.count("eval") > 0;
    args.print_config = result.count("print-config") > 0;
    args.dry_run = result.count("dry-run") > 0;
    args.debug = result.count("debug") > 0;
    if (result.count("config")) args.config_path = result["config"].as<std::string>();
    if (result.count("ensemble")) {
      const std::string list = result["ensemble"].as<std::string>();
      args.ensemble = comma_separated(list);
      if (args.ensemble.empty()) throw ConfigError("--ensemble: expected checkpoint files separated by commas, got '" + list + "'");
      if (!args.eval) throw ConfigError("--ensemble: only with --eval (it evaluates the checkpoints' models together)");
    }
    for (const auto& kv : result.arguments()) {
      bool renamed = false;
      const ConfigField* f = find_config_field(kv.key(), &renamed);
      if (!f) continue;  // a mode (--config, --eval, ...)
      if (renamed) warn_about_input(renamed_flag_warning(kv.key(), *f));
      args.overrides.emplace_back(f->name, kv.value());
    }
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    throw ConfigError(std::string("command line: ") + e.what() + " (see trainer --help)");
  }
  return args;
}

TrainConfig apply_overrides(TrainConfig cfg, const CliArgs& args) {
  for (const auto& [name, text] : args.overrides) set_field_from_string(cfg, name, text, "command line");
  if (args.debug) {
    // What --debug changes in the config (main.cpp sets the rest): a small evaluation, saves in
    // the training thread, frequent progress lines.
    if (cfg.eval_limit == 0 || cfg.eval_limit > 256) cfg.eval_limit = 256;  // max_eval_words
    cfg.async_save = false;
    cfg.log_every_steps = std::min<int64_t>(cfg.log_every_steps, 10);
  }
  validate(cfg, args.config_path ? *args.config_path + " + command line" : "command line");
  return cfg;
}

}  // namespace resumable
