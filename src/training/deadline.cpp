#include "resumable/training/deadline.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <fcntl.h>
#include <spawn.h>
#include <stdexcept>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace resumable {
namespace {

// "YYYY-MM-DDTHH:MM[:SS][Z]": local time, or UTC with Z.
std::optional<WallClock::time_point> parse_iso(const std::string& text) {
  std::tm tm{};
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &consumed) != 5)
    return std::nullopt;
  std::string rest = text.substr(static_cast<size_t>(consumed));
  if (!rest.empty() && rest[0] == ':') {
    int seconds_consumed = 0;
    if (std::sscanf(rest.c_str(), ":%2d%n", &tm.tm_sec, &seconds_consumed) != 1) return std::nullopt;
    rest = rest.substr(static_cast<size_t>(seconds_consumed));
  }
  const bool utc = rest == "Z";
  if (!rest.empty() && !utc) return std::nullopt;
  if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 60)
    return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  tm.tm_isdst = -1;
  const std::time_t t = utc ? timegm(&tm) : std::mktime(&tm);
  if (t == static_cast<std::time_t>(-1)) return std::nullopt;
  return WallClock::from_time_t(t);
}

}  // namespace

std::optional<WallClock::time_point> parse_deadline(const std::string& text, WallClock::time_point start) {
  if (text.empty()) return std::nullopt;
  size_t used = 0;
  try {
    double seconds = std::stod(text, &used);
    if (used == text.size()) {
      if (!(seconds > 0) || seconds > 1e9) return std::nullopt;
      return start + std::chrono::duration_cast<WallClock::duration>(std::chrono::duration<double>(seconds));
    }
  } catch (const std::exception&) {
  }
  return parse_iso(text);
}

std::optional<WallClock::time_point> parse_slurm_end_time(const std::string& text) {
  std::string t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ' || t.back() == '\r')) t.pop_back();
  if (t.empty() || t.back() == 'Z') return std::nullopt;  // squeue prints local time, never UTC
  return parse_iso(t);
}

std::string iso_local_time(WallClock::time_point t) {
  std::time_t tt = WallClock::to_time_t(t);
  std::tm tm{};
  localtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return buf;
}

void MovingMax::add(double v) {
  values_.push_back(v);
  while (values_.size() > n_) values_.pop_front();
}

double MovingMax::value() const { return values_.empty() ? 0.0 : *std::max_element(values_.begin(), values_.end()); }

namespace {

// The job's end time as squeue gives it, or nullopt (no limit, squeue missing or failing). Raw
// file descriptors, not popen's FILE: the refresh thread is detached, and a stdio stream it held
// blocked in a read could hold up the process's exit, which flushes every stream.
std::optional<WallClock::time_point> query_slurm_end(const std::string& job_id) {
  // Bounded: a controller that does not answer must not hold the thread for long.
  const std::string query = "squeue -h -j '" + job_id + "' -o %e";
  const std::string cmd = "{ if command -v timeout >/dev/null; then timeout 30 " + query + "; else " + query +
                          "; fi; } 2>/dev/null";
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return std::nullopt;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  const char* argv[] = {"sh", "-c", cmd.c_str(), nullptr};
  pid_t pid = -1;
  const int spawned = ::posix_spawn(&pid, "/bin/sh", &actions, nullptr, const_cast<char* const*>(argv), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  std::string out;
  if (spawned == 0) {
    char buf[128];
    ssize_t n;
    while (out.size() < 4096 && ((n = ::read(fds[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)))
      if (n > 0) out.append(buf, static_cast<size_t>(n));
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  ::close(fds[0]);
  const size_t eol = out.find('\n');
  if (eol != std::string::npos) out.resize(eol);
  return out.empty() ? std::nullopt : parse_slurm_end_time(out);
}

bool plain_job_id(const std::string& id) {
  return !id.empty() && std::all_of(id.begin(), id.end(), [](char c) { return (c >= '0' && c <= '9') || c == '_'; });
}

}  // namespace

Deadline::Deadline(Options options) : options_(std::move(options)) {
  if (options_.deadline == "none") return;
  if (!options_.deadline.empty()) {
    shared_->end = parse_deadline(options_.deadline, options_.start);
    if (!shared_->end)
      throw std::invalid_argument("--deadline: expected seconds from the start (e.g. 3600), a local time "
                                  "YYYY-MM-DDTHH:MM[:SS] (Z for UTC) or none, found '" + options_.deadline + "'");
    source_ = "--deadline";
    return;
  }
  if (!plain_job_id(options_.slurm_job_id)) return;
  source_ = "Slurm job " + options_.slurm_job_id + " (squeue)";
  // The first reading too is the thread's: a slow controller never delays the start.
  std::thread(refresh_loop, shared_, options_.slurm_job_id, options_.refresh_seconds).detach();
}

Deadline::~Deadline() {
  {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    shared_->stopping = true;
  }
  shared_->wake.notify_all();  // a thread between queries ends now; one inside squeue, when it returns
}

std::optional<WallClock::time_point> Deadline::end() const {
  std::lock_guard<std::mutex> lock(shared_->mutex);
  return shared_->end;
}

void Deadline::refresh_loop(std::shared_ptr<Shared> shared, std::string job_id, double refresh_seconds) {
  const auto period = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::duration<double>(std::max(1.0, refresh_seconds)));
  std::unique_lock<std::mutex> lock(shared->mutex);
  while (!shared->stopping) {
    lock.unlock();
    auto end = query_slurm_end(job_id);
    lock.lock();
    // A failed query keeps the last known end: a busy controller does not lift the deadline.
    if (end) shared->end = end;
    if (shared->wake.wait_for(lock, period, [&] { return shared->stopping; })) break;
  }
}

}  // namespace resumable
