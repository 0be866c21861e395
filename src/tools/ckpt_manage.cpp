// `ckpt clean` and `ckpt backup`: the two tools that write to a run's checkpoints. Both keep the
// rules a save keeps: clean deletes only what training's retention would (under the run lock, so
// never while a job saves there), and a backup is written like a checkpoint (temporary file,
// fsync, rename, directory fsync) and read back before it counts.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "resumable/checkpoint/checkpoint_manager.h"
#include "resumable/checkpoint/run_directory_lock.h"
#include "resumable/tools/ckpt_command.h"
#include "resumable/training/checkpoint_schema.h"
#include "resumable/util/atomic_file.h"
#include "resumable/util/errors.h"

namespace resumable {
namespace {

using json = nlohmann::json;

std::string base_name(const std::string& p) {
  auto slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

}  // namespace

int ckpt_clean(const std::vector<std::string>& raw) {
  ToolArgs a = parse_tool_args("ckpt clean", raw, {"--keep-last", "--keep-every-steps"}, {"--dry-run", "--json"},
                               {{"--keep-every", "--keep-every-steps"}});
  if (a.positional.size() != 1) throw ConfigError("ckpt clean: expected one RUN_DIR (see trainer ckpt clean --help)");
  if (!a.value("--keep-last")) throw ConfigError("ckpt clean: --keep-last N is required (N >= 1: the newest N snapshots stay)");
  RetentionPolicy policy{a.integer("--keep-last", 0, 1), a.integer("--keep-every-steps", 0, 0)};
  std::string run_dir = a.positional[0], dir = run_dir + "/checkpoints";
  if (!is_directory(dir)) {
    if (base_name(run_dir) == "checkpoints" && is_directory(run_dir)) dir = run_dir, run_dir = parent_directory(run_dir);
    else throw ConfigError("ckpt clean: " + run_dir + ": no checkpoints/ folder (expected a RUN_DIR)");
  }
  const bool dry = a.has("--dry-run");
  // A job training in this directory holds the lock: cleaning under it could race its save. The
  // lock names this tool, so a job starting meanwhile waits for it rather than giving up.
  std::unique_ptr<RunDirectoryLock> lock;
  if (!dry) lock = std::make_unique<RunDirectoryLock>(run_dir, RunDirectoryLockOptions{"ckpt clean", {}});
  CheckpointManager manager(dir, policy);
  std::vector<CheckpointFile> snapshots = manager.snapshots();
  int64_t newest = -1;
  for (const auto& f : snapshots)
    if (f.problem.empty()) {
      newest = f.step();
      break;
    }
  std::vector<std::string> removed = dry ? manager.prunable(newest) : manager.prune(newest);
  std::vector<std::string> kept;
  for (const auto& f : snapshots)
    if (std::find(removed.begin(), removed.end(), f.path) == removed.end()) kept.push_back(f.path);
  if (a.has("--json")) {
    std::cout << json{{"directory", dir}, {"dry_run", dry}, {dry ? "would_delete" : "deleted", removed}, {"kept", kept}}.dump(2)
              << "\n";
    return exit_code::kDone;
  }
  for (const auto& p : removed) std::printf("%s %s\n", dry ? "would delete" : "deleted", p.c_str());
  std::printf("%s %zu of %zu numbered snapshot(s) in %s (keep-last %lld%s); last.pt, best.pt and backups are never "
              "touched\n",
              dry ? "would delete" : "deleted", removed.size(), snapshots.size(), dir.c_str(),
              static_cast<long long>(policy.keep_last),
              policy.keep_every > 0 ? (", keep-every-steps " + std::to_string(policy.keep_every)).c_str() : "");
  return exit_code::kDone;
}

int ckpt_backup(const std::vector<std::string>& raw) {
  ToolArgs a = parse_tool_args("ckpt backup", raw, {}, {"--json"});
  if (a.positional.empty() || a.positional.size() > 2)
    throw ConfigError("ckpt backup: expected FILE [DEST_DIR] (see trainer ckpt backup --help)");
  const std::string source = a.positional[0];
  const std::string dest_dir = a.positional.size() > 1 ? a.positional[1] : parent_directory(source) + "/backup";

  // Read once, verify those very bytes, and write the same bytes: what is copied is what was checked.
  std::ifstream in(source, std::ios::binary);
  if (!in) throw CheckpointError(source + ": cannot open: " + std::strerror(errno), CheckpointError::Kind::kUnreadable);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  LoadedCheckpoint ck = parse_checkpoint(buffer.str(), source);
  CheckpointSummary s = summarize_checkpoint(ck);

  char stamp[32];
  std::time_t now = std::time(nullptr);
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
  char name[96];
  std::snprintf(name, sizeof name, "step-%08lld-%s", static_cast<long long>(s.global_step), stamp);
  std::string target = dest_dir + "/" + name + ".pt";
  for (int i = 1; path_exists(target); ++i) target = dest_dir + "/" + name + "-" + std::to_string(i) + ".pt";

  create_directories(dest_dir);
  const std::string bytes = buffer.str();
  AtomicFileWriter out(target);
  out.write(bytes.data(), bytes.size());
  out.commit();
  // Read back from the disk: the copy counts only if its checksum is the source's.
  try {
    LoadedCheckpoint copy = read_checkpoint(target);
    if (copy.checksum != ck.checksum)
      throw CheckpointError(target + ": the copy's checksum " + copy.checksum + " is not the source's " + ck.checksum);
  } catch (const CheckpointError&) {
    ::unlink(target.c_str());
    throw;
  }
  if (a.has("--json")) {
    std::cout << json{{"source", source}, {"backup", target}, {"step", s.global_step}, {"epoch", s.epoch},
                      {"bytes", bytes.size()}, {"checksum", ck.checksum}, {"verified", true}}
                     .dump(2)
              << "\n";
  } else {
    std::printf("backed up %s (step %lld, epoch %lld, %s) to %s: verified, never pruned; resume it with --resume %s\n",
                source.c_str(), static_cast<long long>(s.global_step), static_cast<long long>(s.epoch),
                ck.checksum.c_str(), target.c_str(), target.c_str());
  }
  return exit_code::kDone;
}

}  // namespace resumable
