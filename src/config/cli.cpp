#include "resumable/config/cli.h"

#include <algorithm>

#include <cxxopts.hpp>

namespace resumable {
namespace {

const char* kDescription =
    "resumable: data-parallel Transformer G2P trainer with exact checkpoint/resume.\n"
    "Launch alone, under mpirun, torchrun or srun. Config keys below are also JSON keys\n"
    "(with '_' for '-'); the command line wins over the config file.\n"
    "Tools (each has --help):\n"
    "  trainer ckpt list|info|verify|diff|clean|backup|export ...   inspect and manage checkpoints\n"
    "  trainer predict --checkpoint FILE [WORD...]                  pronounce words (stdin if none)\n"
    "Exit codes: 0 done, 1 runtime error, 2 bad config/flag/data, 69 run directory in use by\n"
    "another job (retry later), 74 checkpoint could not be saved, 75 stopped by a signal after\n"
    "saving (requeue and resume).";

cxxopts::Options make_options() {
  cxxopts::Options o("trainer", kDescription);
  o.custom_help("[--config FILE] [--KEY VALUE ...]");
  o.add_options("general")
      ("config", "JSON config file (default: the embedded defaults)", cxxopts::value<std::string>())
      ("eval", "evaluate a checkpoint (--resume PATH, else best.pt/last.pt of the run) on the test split")
      ("ensemble", "with --eval: more checkpoints (comma-separated) whose models decode together with the evaluated "
                   "one, their next-phoneme probabilities averaged",
       cxxopts::value<std::string>())
      ("debug", "debugging run (one process, no launcher needed): deterministic algorithms, autograd anomaly "
                "detection, evaluation on 256 words, saves in the training thread, a progress line every 10 steps")
      ("print-config", "print the resolved config as JSON and exit")
      ("dry-run", "print what a start would do (config, resume plan, schedule, deadline) and exit 0; writes nothing")
      ("h,help", "show this help")
      ("version", "print the trainer version");
  for (const auto& f : config_fields()) {
    std::string help = f.help + " [default " + field_value_text(TrainConfig{}, f) + "]";
    auto value = cxxopts::value<std::string>();
    if (std::holds_alternative<bool TrainConfig::*>(f.member)) value->implicit_value("true");
    o.add_options("config keys")(f.flag, help, value);
  }
  return o;
}

bool is_bool_literal(const std::string& s) {
  for (const char* b : {"true", "false", "1", "0", "yes", "no", "on", "off"})
    if (s == b) return true;
  return false;
}

// cxxopts takes a boolean's value only as --key=value, and reads "--key false" as the flag plus a
// stray "false": join a boolean flag with a following true/false, so all three forms work.
std::vector<std::string> join_boolean_values(int argc, const char* const* argv) {
  std::vector<std::string> out;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (i > 0 && arg.rfind("--", 0) == 0 && arg.find('=') == std::string::npos && i + 1 < argc &&
        is_bool_literal(argv[i + 1])) {
      for (const auto& f : config_fields())
        if (std::holds_alternative<bool TrainConfig::*>(f.member) && arg == "--" + f.flag) {
          arg += std::string("=") + argv[++i];
          break;
        }
    }
    out.push_back(arg);
  }
  return out;
}

}  // namespace

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

std::string cli_help_text() { return make_options().help({"general", "config keys"}); }

CliArgs parse_cli(int argc, const char* const* argv) {
  auto options = make_options();
  CliArgs args;
  try {
    std::vector<std::string> joined = join_boolean_values(argc, argv);
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
      for (const auto& f : config_fields())
        if (kv.key() == f.flag) args.overrides.emplace_back(f.name, kv.value());
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
    if (cfg.eval_limit == 0 || cfg.eval_limit > 256) cfg.eval_limit = 256;
    cfg.async_save = false;
    cfg.log_every_steps = std::min<int64_t>(cfg.log_every_steps, 10);
  }
  validate(cfg, args.config_path ? *args.config_path + " + command line" : "command line");
  return cfg;
}

}  // namespace resumable
