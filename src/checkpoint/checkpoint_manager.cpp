#include "resumable/checkpoint/checkpoint_manager.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "resumable/util/atomic_file.h"
#include "resumable/util/errors.h"

namespace resumable {
namespace {

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// "step-00001234.pt" -> 1234; -1 for other names (and for numbers too long to be a step).
int64_t step_of_name(const std::string& name) {
  if (name.size() < 9 || name.rfind("step-", 0) != 0 || name.substr(name.size() - 3) != ".pt") return -1;
  std::string digits = name.substr(5, name.size() - 8);
  if (digits.empty() || digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoll(digits);
}

std::string base_name(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

CheckpointFile describe(const std::string& path) {
  CheckpointFile f;
  f.path = path;
  try {
    f.meta = read_checkpoint_meta(path);
  } catch (const CheckpointError& e) {
    f.problem = e.what();
  }
  return f;
}

// Newest first: higher segment, then higher step. Files whose record could not be read go first
// (by step): nothing says they are older than the rest.
bool newer(const CheckpointFile& a, const CheckpointFile& b) {
  bool a_unknown = !a.problem.empty(), b_unknown = !b.problem.empty();
  if (a_unknown != b_unknown) return a_unknown;
  if (a.segment() != b.segment()) return a.segment() > b.segment();
  return a.step() > b.step();
}

bool no_space(const SaveError& e) { return e.error_code() == ENOSPC || e.error_code() == EDQUOT; }

}  // namespace

int64_t CheckpointFile::step() const { return meta ? meta->step : step_of_name(base_name(path)); }

CheckpointManager::CheckpointManager(std::string dir, RetentionPolicy retention)
    : dir_(std::move(dir)), retention_(retention) {}

std::string CheckpointManager::step_path(int64_t step) const {
  char name[64];
  std::snprintf(name, sizeof name, "/step-%08lld.pt", static_cast<long long>(step));
  return dir_ + name;
}

void CheckpointManager::prepare() {
  create_directories(dir_);
  remove_stale_temporaries(dir_);
}

SaveReport CheckpointManager::save(const c10::IValue& state, const CheckpointMeta& meta, bool is_best,
                                  const PendingBest* earlier_best) {
  SaveReport report;
  if (is_best) earlier_best = nullptr;  // a newer best supersedes it
  bool earlier_written = false;
  if (earlier_best) {
    try {
      write_checkpoint(earlier_best->state, {step_path(earlier_best->meta.step)}, &earlier_best->meta);
      earlier_written = true;
    } catch (const SaveError& e) {
      report.problems.push_back(std::string("the earlier best (step ") + std::to_string(earlier_best->meta.step) +
                                "): " + e.what());
    }
  }
  // last.pt first: if the writer dies between names, last.pt is already the newest.
  std::vector<std::string> paths{last_path()};
  if (is_best) paths.push_back(best_path());
  paths.push_back(step_path(meta.step));
  try {
    report.written = write_checkpoint(state, paths, &meta);
  } catch (const SaveError& e) {
    // A full disk: make the room this save's pruning would make anyway, then try once more.
    if (!no_space(e)) throw;
    report.freed = prune(meta.step, /*room_for_one=*/true);
    if (report.freed.empty()) throw;
    report.written = write_checkpoint(state, paths, &meta);
  }
  report.paths = report.written.published;
  report.problems.insert(report.problems.end(), report.written.problems.begin(), report.written.problems.end());
  report.best_published = std::find(report.paths.begin(), report.paths.end(), best_path()) != report.paths.end();
  if (earlier_written) {
    try {
      publish_copy(step_path(earlier_best->meta.step), best_path());
      fsync_directory(dir_);
      report.paths.push_back(best_path());
      report.best_published = true;
    } catch (const SaveError& e) {
      report.problems.push_back(e.what());
    }
  }
  try {
    report.pruned = prune(meta.step);
  } catch (const SaveError& e) {
    report.problems.push_back(std::string("pruning: ") + e.what());
  }
  return report;
}

std::vector<CheckpointFile> CheckpointManager::snapshots() const {
  std::vector<CheckpointFile> found;
  DIR* d = ::opendir(dir_.c_str());
  if (!d) return {};
  while (dirent* e = ::readdir(d))
    if (step_of_name(e->d_name) >= 0) found.push_back(describe(dir_ + "/" + e->d_name));
  ::closedir(d);
  std::sort(found.begin(), found.end(), newer);
  return found;
}

bool CheckpointManager::has_checkpoints() const {
  return exists(last_path()) || exists(best_path()) || !snapshots().empty();
}

std::vector<CheckpointFile> CheckpointManager::candidates() const {
  std::vector<CheckpointFile> out;
  if (exists(last_path())) out.push_back(describe(last_path()));
  std::vector<CheckpointFile> rest = snapshots();
  if (exists(best_path())) {
    // best.pt after the snapshots it is no newer than: it may be old.
    CheckpointFile best = describe(best_path());
    auto pos = std::find_if(rest.begin(), rest.end(), [&](const CheckpointFile& f) { return newer(best, f); });
    rest.insert(pos, best);
  }
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

int64_t CheckpointManager::highest_segment() const {
  int64_t highest = 0;
  for (const auto& f : candidates())
    if (f.problem.empty()) highest = std::max(highest, f.segment());
  return highest;
}

std::optional<LoadedCheckpoint> CheckpointManager::load_newest_good(
    std::vector<std::string>& skipped, const std::function<void(const LoadedCheckpoint&)>& check,
    const std::function<bool(const CheckpointFile&)>& accept) const {
  for (const auto& f : candidates()) {
    if (accept && !accept(f)) continue;
    try {
      LoadedCheckpoint ck = read_checkpoint(f.path);
      if (check) check(ck);
      return ck;
    } catch (const CheckpointError& e) {
      if (!e.damaged()) throw;
      skipped.push_back(e.what());
    }
  }
  return std::nullopt;
}

std::vector<std::string> CheckpointManager::prunable(int64_t newest_step, bool room_for_one) const {
  std::vector<std::string> out;
  std::vector<CheckpointFile> all;  // newest first; never a file whose record cannot be read
  for (auto& f : snapshots())
    if (f.problem.empty()) all.push_back(std::move(f));
  const int64_t keep_last = room_for_one ? std::max<int64_t>(retention_.keep_last - 1, 1) : retention_.keep_last;
  for (size_t i = 0; i < all.size(); ++i) {
    const CheckpointFile& f = all[i];
    bool keep = static_cast<int64_t>(i) < keep_last || f.step() == newest_step ||
                (retention_.keep_every > 0 && f.step() % retention_.keep_every == 0);
    if (!keep) out.push_back(f.path);
  }
  return out;
}

std::vector<std::string> CheckpointManager::prune(int64_t newest_step, bool room_for_one) {
  std::vector<std::string> removed;
  for (const auto& path : prunable(newest_step, room_for_one))
    if (::unlink(path.c_str()) == 0) removed.push_back(path);
  if (!removed.empty()) fsync_directory(dir_);
  return removed;
}

std::string CheckpointManager::set_aside_target() const {
  char stamp[32];
  std::time_t now = std::time(nullptr);
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
  std::string target = dir_ + ".old-" + stamp;
  for (int i = 1; exists(target); ++i) target = dir_ + ".old-" + stamp + "-" + std::to_string(i);
  return target;
}

std::string CheckpointManager::set_aside() {
  const std::string target = set_aside_target();
  if (::rename(dir_.c_str(), target.c_str()) != 0)
    throw SaveError(dir_ + ": cannot move aside to " + target + ": " + std::strerror(errno), errno);
  fsync_directory(parent_directory(dir_));  // the rename lives in the parent
  return target;
}

}  // namespace resumable
