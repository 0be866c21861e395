#include "resumable/tools/ckpt_command.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <functional>
#include <iostream>
#include <map>

#include "resumable/util/errors.h"
#include "resumable/util/help_text.h"

namespace resumable {
namespace {

// One subcommand: its line in `trainer ckpt --help` and its own `--help` page.
struct Subcommand {
  std::string name;
  std::string synopsis;  // after "trainer ckpt "
  std::string summary;   // its line in the overview
  std::string about;     // its own page: what it does
  std::vector<HelpOption> options;
  std::string exit_codes;
};

const HelpOption kJson{"--json", "print one JSON document instead of text (for scripts)"};
const HelpOption kHelpFlag{"-h, --help", "show this help"};
const char* kExitCodes = "Exit codes: 0 done, 1 a checkpoint is damaged, 2 bad arguments.";

const std::vector<Subcommand>& subcommands() {
  static const std::vector<Subcommand> table = {
      {"list", "list RUN_DIR|CKPT_DIR [--json]", "one line per checkpoint, OK or why damaged",
       "One line per checkpoint: name, step, epoch, saved, size, validation loss/WER, marks (last, best,\n"
       "backup), OK or why it is damaged.",
       {kJson, kHelpFlag}, kExitCodes},
      {"info", "info FILE [--tensors] [--json]", "position, LR, best metric, histories, versions, config",
       "Position, LR, best metric, world size, histories, resume points, component versions and config.",
       {{"--tensors", "add every parameter's name, shape and dtype"}, kJson, kHelpFlag}, kExitCodes},
      {"verify", "verify FILE... [--deep [--data FILE]] [--json]", "checksum, layout, and that the states load",
       "Checks each FILE's checksum and layout, and that its model and optimizer states load.",
       {{"--deep",
         "also recompute the loss the checkpoint recorded for its next samples (evaluation mode, fp32) from its "
         "weights and the training data, on the CPU; a difference beyond 1e-4 of the loss (1e-4 below a loss of "
         "1) fails"},
        {"--data FILE", "with --deep: the dictionary, when the saved config's path does not lead to it from here"},
        kJson,
        kHelpFlag},
       "Exit codes: 0 every FILE is good, 1 one is damaged, 2 bad arguments."},
      {"diff", "diff A B [--json]", "config fields, position and per-tensor max |a-b|",
       "Compares two checkpoints: config fields, position and per-tensor max |a-b|.", {kJson, kHelpFlag},
       "Exit codes: 0 identical, 1 different (or damaged), 2 bad arguments."},
      {"clean", "clean RUN_DIR --keep-last N [--keep-every-steps M] [--dry-run] [--json]",
       "delete old numbered snapshots by training's retention rules",
       "Deletes old numbered snapshots by training's retention rules, under the run lock; never last.pt,\n"
       "best.pt, backups or the newest snapshot.",
       {{"--keep-last N", "numbered snapshots to keep, the newest (training's keep_last)"},
        {"--keep-every-steps M",
         "also keep the snapshots whose step is a multiple of M (training's keep_every_steps; the old "
         "--keep-every still works in this release)"},
        {"--dry-run", "print what would be deleted; delete nothing (and take no lock)"},
        kJson,
        kHelpFlag},
       kExitCodes},
      {"backup", "backup FILE [DEST_DIR] [--json]", "a verified copy that retention never prunes",
       "Copies FILE, verified, where retention never prunes it: DEST_DIR, by default the file's folder's\n"
       "backup/, named by step and time.",
       {kJson, kHelpFlag}, kExitCodes},
      {"export", "export FILE -o OUT --format safetensors|pt [--json]", "model weights for use without this trainer",
       "Writes the model weights (names as in the checkpoint's `model`) to OUT and the vocabularies to\n"
       "OUT's .vocab.json beside them.",
       {{"-o, --output OUT", "the weights file to write"},
        {"--format safetensors|pt", "safetensors, or a weights-only torch .pt"},
        kJson,
        kHelpFlag},
       kExitCodes},
  };
  return table;
}

std::string overview_help() {
  HelpPage page;
  page.usage = "trainer ckpt SUBCOMMAND [ARGS] [--json]";
  page.about = "Checkpoint tools, which start no training; each subcommand has --help.";
  HelpGroup subs{"Subcommands", {}};
  for (const auto& s : subcommands()) subs.options.push_back({s.synopsis, s.summary});
  page.groups = {subs, {"Options", {kJson, kHelpFlag}}};
  page.footer = "Exit codes: 0 done, 1 a checkpoint is damaged or differs (diff), 2 bad arguments.";
  return format_help(page);
}

std::string subcommand_help(const Subcommand& s) {
  HelpPage page;
  page.usage = "trainer ckpt " + s.synopsis;
  page.about = s.about;
  page.groups = {{"Options", s.options}};
  page.footer = s.exit_codes + "\nAll subcommands: trainer ckpt --help.";
  return format_help(page);
}

}  // namespace

std::string local_time_text(int64_t unix_seconds) {
  if (unix_seconds <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", std::localtime(&t));
  return buf;
}

std::string size_text(double bytes) {
  char buf[32];
  if (bytes >= 1e9) std::snprintf(buf, sizeof buf, "%.2f GB", bytes / 1e9);
  else if (bytes >= 1e6) std::snprintf(buf, sizeof buf, "%.1f MB", bytes / 1e6);
  else std::snprintf(buf, sizeof buf, "%.1f kB", bytes / 1e3);
  return buf;
}

bool path_exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

int run_ckpt_command(int argc, char** argv) {
  std::string sub = argc > 1 ? argv[1] : "";
  std::vector<std::string> args(argv + std::min(argc, 2), argv + argc);
  if (sub.empty() || sub == "--help" || sub == "-h" || sub == "help") {
    std::cout << overview_help();
    return sub.empty() ? exit_code::kBadInput : exit_code::kDone;
  }
  static const std::map<std::string, std::function<int(const std::vector<std::string>&)>> commands = {
      {"list", ckpt_list},   {"info", ckpt_info},     {"verify", ckpt_verify}, {"diff", ckpt_diff},
      {"clean", ckpt_clean}, {"backup", ckpt_backup}, {"export", ckpt_export},
  };
  auto it = commands.find(sub);
  if (it == commands.end())
    throw ConfigError("ckpt: unknown subcommand '" + sub + "' (available: list, info, verify, diff, clean, backup, "
                      "export; see trainer ckpt --help)");
  for (const auto& a : args)
    if (a == "--help" || a == "-h") {
      for (const auto& s : subcommands())
        if (s.name == sub) std::cout << subcommand_help(s);
      return exit_code::kDone;
    }
  return it->second(args);
}

}  // namespace resumable
