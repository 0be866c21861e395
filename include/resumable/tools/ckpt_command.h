// `trainer ckpt SUBCOMMAND ...`: checkpoint tools that need no training set-up, each with --json
// for scripts and --help.
//   list RUN_DIR|CKPT_DIR           every checkpoint: step, epoch, saved, size, validation, marks, OK/why
//   info FILE [--tensors]           position, LR, best, world size, histories, versions, config, shapes
//   verify FILE...                  checksum, layout, and that model and optimizer load; exit 0 if all good
//   diff A B                        config, position and per-tensor differences; exit 0 same, 1 differ
//   clean RUN_DIR --keep-last N [--keep-every-steps M] [--dry-run]   training's retention, under the run lock
//   backup FILE [DEST_DIR]          a verified copy that retention never prunes (default CKPT_DIR/backup/)
//   export FILE -o OUT --format safetensors|pt   model weights for use without this trainer
#pragma once

#include <string>
#include <vector>

#include "resumable/tools/tool_args.h"

namespace resumable {

// argv[0] is "ckpt". Returns the exit code.
int run_ckpt_command(int argc, char** argv);

// The subcommands (ckpt_inspect.cpp, ckpt_manage.cpp, ckpt_export.cpp); each returns its exit code.
int ckpt_list(const std::vector<std::string>& args);
int ckpt_info(const std::vector<std::string>& args);
int ckpt_verify(const std::vector<std::string>& args);
int ckpt_diff(const std::vector<std::string>& args);
int ckpt_clean(const std::vector<std::string>& args);
int ckpt_backup(const std::vector<std::string>& args);
int ckpt_export(const std::vector<std::string>& args);

// Shared by the tools: "2026-11-26 08:51:20" (local time), "2.9 MB", and stat(2) questions.
std::string local_time_text(int64_t unix_seconds);
std::string size_text(double bytes);
bool path_exists(const std::string& path);
bool is_directory(const std::string& path);

}  // namespace resumable
