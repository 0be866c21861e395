#include "resumable/config/cli.h"

#include <cxxopts.hpp>

namespace resumable {
namespace {

const char* kDescription =
    "resumable: data-parallel Transformer G2P trainer with exact checkpoint/resume.\n"
    "Launch alone, under mpirun, torchrun or srun. Config keys below are also JSON keys\n"
    "(with '_' for '-'); the command line wins over the config file.\n"
    "Checkpoint tools: trainer ckpt verify FILE...\n"
    "Exit codes: 0 done, 1 runtime error, 2 bad config/flag/data, 74 checkpoint could not be\n"
    "saved, 75 stopped by a signal after saving (requeue and resume).";

cxxopts::Options make_options() {
  cxxopts::Options o("trainer", kDescription);
  o.custom_help("[--config FILE] [--KEY VALUE ...]");
  o.add_options("general")
      ("config", "JSON config file (default: the embedded defaults)", cxxopts::value<std::string>())
      ("eval", "evaluate a checkpoint (--resume PATH, else best.pt/last.pt of the run) on the test split")
      ("print-config", "print the resolved config as JSON and exit")
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

}  // namespace

bool CliArgs::overrides_field(const std::string& name) const {
  for (const auto& [k, v] : overrides)
    if (k == name) return true;
  return false;
}

std::string cli_help_text() { return make_options().help({"general", "config keys"}); }

CliArgs parse_cli(int argc, const char* const* argv) {
  auto options = make_options();
  CliArgs args;
  try {
    auto result = options.parse(argc, argv);
    if (!result.unmatched().empty())
      throw ConfigError("command line: unexpected argument '" + result.unmatched().front() +
                        "' (options take the form --key value)");
    args.help = result.count("help") > 0;
    args.version = result.count("version") > 0;
    args.eval = result.count("eval") > 0;
    args.print_config = result.count("print-config") > 0;
    if (result.count("config")) args.config_path = result["config"].as<std::string>();
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
  validate(cfg, args.config_path ? *args.config_path + " + command line" : "command line");
  return cfg;
}

}  // namespace resumable
