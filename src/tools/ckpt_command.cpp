#include "resumable/tools/ckpt_command.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <functional>
#include <iostream>
#include <map>

#include "resumable/util/errors.h"

namespace resumable {
namespace {

const char* kHelp =
    "usage: trainer ckpt SUBCOMMAND [ARGS] [--json]\n"
    "Checkpoint tools; each subcommand has --help, and --json prints one JSON document for scripts.\n"
    "  list RUN_DIR|CKPT_DIR            one line per checkpoint: name, step, epoch, saved, size,\n"
    "                                   validation loss/WER, marks (last, best, backup), OK or why damaged\n"
    "  info FILE [--tensors]            position, LR, best metric, world size, histories, resume points,\n"
    "                                   versions, config; --tensors adds every parameter's shape\n"
    "  verify FILE... [--deep [--data F]]  checksum, layout, and that model and optimizer states load;\n"
    "                                   --deep also recomputes the resume proof's probe loss on the CPU\n"
    "                                   from the weights and the run's data; exit 0 only if all is good\n"
    "  diff A B                         config fields, position and per-tensor max |a-b|;\n"
    "                                   exit 0 identical, 1 different\n"
    "  clean RUN_DIR --keep-last N [--keep-every M] [--dry-run]\n"
    "                                   delete old numbered snapshots by training's retention rules\n"
    "                                   (never last.pt, best.pt, backups or the newest), under the run lock\n"
    "  backup FILE [DEST_DIR]           verified copy that retention never prunes\n"
    "                                   (default: the file's folder/backup/, named by step and time)\n"
    "  export FILE -o OUT --format safetensors|pt\n"
    "                                   model weights (names as in the checkpoint's `model`) and\n"
    "                                   OUT's .vocab.json beside them\n"
    "Exit codes: 0 done, 1 a checkpoint is damaged or differs (diff), 2 bad arguments.\n";

const std::map<std::string, const char*>& sub_help() {
  static const std::map<std::string, const char*> h = {
      {"list", "usage: trainer ckpt list RUN_DIR|CKPT_DIR [--json]\n"},
      {"info", "usage: trainer ckpt info FILE [--tensors] [--json]\n"},
      {"verify", "usage: trainer ckpt verify FILE... [--deep [--data FILE]] [--json]\n"
                 "  --deep: recompute the loss the checkpoint recorded for its next samples (evaluation mode,\n"
                 "          fp32) from its weights and the training data, on the CPU; a difference beyond\n"
                 "          1e-4 of the loss (1e-4 below a loss of 1) fails. --data: the dictionary, when the\n"
                 "          saved config's path does not lead to it from here.\n"},
      {"diff", "usage: trainer ckpt diff A B [--json]   (exit 0 identical, 1 different)\n"},
      {"clean", "usage: trainer ckpt clean RUN_DIR --keep-last N [--keep-every M] [--dry-run] [--json]\n"},
      {"backup", "usage: trainer ckpt backup FILE [DEST_DIR] [--json]\n"},
      {"export", "usage: trainer ckpt export FILE -o OUT --format safetensors|pt [--json]\n"},
  };
  return h;
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
    std::cout << kHelp;
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
      std::cout << sub_help().at(sub) << "\n" << kHelp;
      return exit_code::kDone;
    }
  return it->second(args);
}

}  // namespace resumable
