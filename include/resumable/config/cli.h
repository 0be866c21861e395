// The command line: `trainer [--config FILE] [--KEY VALUE ...] [--eval [--ensemble FILES]] [--debug]
// [--print-config] [--dry-run]`.
// Every config key is a flag (generated from the config field table: --KEY-WITH-DASHES VALUE; a
// boolean also as --KEY, --KEY=false and --no-KEY; a renamed key's old flag with a warning); parsing
// only collects the overrides, so they can be applied over whichever base config the run ends up using (a file, the
// embedded defaults, or the config saved in the checkpoint being resumed).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "resumable/config/config.h"

namespace resumable {

struct CliArgs {
  std::optional<std::string> config_path;                      // --config
  std::vector<std::pair<std::string, std::string>> overrides;  // (field name, text), in order
  bool eval = false;          // --eval: report metrics of a checkpoint on the validation and test splits
  std::vector<std::string> ensemble;  // --ensemble A,B: with --eval, checkpoints decoding with it
  bool print_config = false;  // --print-config: print the resolved config as JSON and exit
  bool dry_run = false;       // --dry-run: print what a start would do and exit, writing nothing
  bool debug = false;         // --debug: deterministic kernels, anomaly detection, small eval
  bool help = false;
  bool version = false;

  bool overrides_field(const std::string& name) const;
};

// "a.pt,b.pt" -> {"a.pt", "b.pt"}; empty items are dropped (a trailing comma is harmless).
std::vector<std::string> comma_separated(const std::string& text);

// Throws ConfigError on unknown flags, missing values and stray arguments. Warns (warn_about_input)
// once per old flag name used.
CliArgs parse_cli(int argc, const char* const* argv);
// `trainer --help`: the modes, the config keys grouped by topic, the tools and the shipped configs
// with their descriptions.
std::string cli_help_text();

// Base config (file or defaults) with the command-line overrides (and --debug's settings) applied,
// then validated.
TrainConfig apply_overrides(TrainConfig base, const CliArgs& args);

}  // namespace resumable
