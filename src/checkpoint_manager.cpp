#include "resumable/checkpoint_manager.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "resumable/atomic_file.h"
#include "resumable/errors.h"

namespace resumable {
namespace {

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// Modification time in ns, or -1 when the file is missing.
int64_t mtime_ns(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

void make_dirs(const std::string& dir) {
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    partial = dir.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST)
      throw SaveError(partial + ": cannot create directory: " + std::strerror(errno));
  }
}

// "step-00001234.pt" -> 1234; -1 for other names.
int64_t step_of(const std::string& name) {
  if (name.size() < 9 || name.rfind("step-", 0) != 0 || name.substr(name.size() - 3) != ".pt") return -1;
  std::string digits = name.substr(5, name.size() - 8);
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoll(digits);
}

}  // namespace

CheckpointManager::CheckpointManager(std::string dir, RetentionPolicy retention)
    : dir_(std::move(dir)), retention_(retention) {}

std::string CheckpointManager::step_path(int64_t step) const {
  char name[64];
  std::snprintf(name, sizeof name, "/step-%08lld.pt", static_cast<long long>(step));
  return dir_ + name;
}

void CheckpointManager::prepare() {
  make_dirs(dir_);
  remove_stale_temporaries(dir_);
}

SaveReport CheckpointManager::save(const c10::IValue& state, int64_t step, bool is_best) {
  SaveReport report;
  // last.pt first: if the writer dies between names, last.pt is already the newest.
  report.paths.push_back(last_path());
  if (is_best) report.paths.push_back(best_path());
  report.paths.push_back(step_path(step));
  report.written = write_checkpoint(state, report.paths);
  report.pruned = prune(step);
  return report;
}

std::vector<std::pair<int64_t, std::string>> CheckpointManager::snapshots() const {
  struct Entry {
    int64_t mtime, step;
    std::string path;
  };
  std::vector<Entry> found;
  DIR* d = ::opendir(dir_.c_str());
  if (!d) return {};
  while (dirent* e = ::readdir(d)) {
    int64_t step = step_of(e->d_name);
    std::string path = dir_ + "/" + e->d_name;
    if (step >= 0) found.push_back({mtime_ns(path), step, path});
  }
  ::closedir(d);
  // Newest means most recently written: after a rollback (--resume of an older file) the
  // abandoned later steps sort behind the snapshots of the timeline that goes on.
  std::sort(found.begin(), found.end(), [](const Entry& a, const Entry& b) {
    return a.mtime != b.mtime ? a.mtime > b.mtime : a.step > b.step;
  });
  std::vector<std::pair<int64_t, std::string>> out;
  for (auto& e : found) out.emplace_back(e.step, std::move(e.path));
  return out;
}

bool CheckpointManager::has_checkpoints() const { return !candidates().empty(); }

std::vector<std::string> CheckpointManager::candidates() const {
  // last.pt, then snapshots and best.pt by write time; best.pt loses ties (it may be old).
  std::vector<std::pair<int64_t, std::string>> timed;
  for (const auto& s : snapshots()) timed.emplace_back(mtime_ns(s.second), s.second);
  if (exists(best_path())) {
    int64_t t = mtime_ns(best_path());
    auto pos = std::find_if(timed.begin(), timed.end(), [&](const auto& e) { return e.first < t; });
    timed.insert(pos, {t, best_path()});
  }
  std::vector<std::string> out;
  if (exists(last_path())) out.push_back(last_path());
  for (auto& e : timed) out.push_back(std::move(e.second));
  return out;
}

std::optional<LoadedCheckpoint> CheckpointManager::load_newest_good(
    std::vector<std::string>& skipped, const std::function<void(const LoadedCheckpoint&)>& check) const {
  for (const auto& path : candidates()) {
    try {
      LoadedCheckpoint ck = read_checkpoint(path);
      if (check) check(ck);
      return ck;
    } catch (const CheckpointError& e) {
      skipped.push_back(e.what());
    }
  }
  return std::nullopt;
}

std::vector<std::string> CheckpointManager::prune(int64_t newest_step) {
  std::vector<std::string> removed;
  auto all = snapshots();  // most recently written first
  for (size_t i = 0; i < all.size(); ++i) {
    const auto& [step, path] = all[i];
    bool keep = static_cast<int64_t>(i) < retention_.keep_last || step == newest_step ||
                (retention_.keep_every > 0 && step % retention_.keep_every == 0);
    if (!keep && ::unlink(path.c_str()) == 0) removed.push_back(path);
  }
  if (!removed.empty()) fsync_directory(dir_);
  return removed;
}

std::string CheckpointManager::set_aside() {
  char stamp[32];
  std::time_t now = std::time(nullptr);
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
  std::string target = dir_ + ".old-" + stamp;
  for (int i = 1; exists(target); ++i) target = dir_ + ".old-" + stamp + "-" + std::to_string(i);
  if (::rename(dir_.c_str(), target.c_str()) != 0)
    throw SaveError(dir_ + ": cannot move aside to " + target + ": " + std::strerror(errno));
  return target;
}

}  // namespace resumable
