#include "resumable/training/deadline.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <stdexcept>

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

// The job's end time as squeue gives it, or nullopt (no limit, squeue missing or failing).
std::optional<WallClock::time_point> query_slurm_end(const std::string& job_id) {
  // Bounded: a controller that does not answer must not hold the thread (or the exit) for long.
  const std::string query = "squeue -h -j '" + job_id + "' -o %e";
  const std::string cmd = "{ if command -v timeout >/dev/null; then timeout 30 " + query + "; else " + query +
                          "; fi; } 2>/dev/null";
  std::FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return std::nullopt;
  char buf[128] = {0};
  const bool got = std::fgets(buf, sizeof buf, p) != nullptr;
  ::pclose(p);
  return got ? parse_slurm_end_time(buf) : std::nullopt;
}

bool plain_job_id(const std::string& id) {
  return !id.empty() && std::all_of(id.begin(), id.end(), [](char c) { return (c >= '0' && c <= '9') || c == '_'; });
}

}  // namespace

Deadline::Deadline(Options options) : options_(std::move(options)) {
  if (options_.deadline == "none") return;
  if (!options_.deadline.empty()) {
    end_ = parse_deadline(options_.deadline, options_.start);
    if (!end_)
      throw std::invalid_argument("--deadline: expected seconds from the start (e.g. 3600), a local time "
                                  "YYYY-MM-DDTHH:MM[:SS] (Z for UTC) or none, found '" + options_.deadline + "'");
    source_ = "--deadline";
    return;
  }
  if (!plain_job_id(options_.slurm_job_id)) return;
  source_ = "Slurm job " + options_.slurm_job_id + " (squeue)";
  // The first reading too is the thread's: a slow controller never delays the start.
  thread_ = std::thread([this] { refresh_loop(); });
}

Deadline::~Deadline() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::optional<WallClock::time_point> Deadline::end() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return end_;
}

void Deadline::refresh_loop() {
  const auto period = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::duration<double>(std::max(1.0, options_.refresh_seconds)));
  std::unique_lock<std::mutex> lock(mutex_);
  do {
    lock.unlock();
    auto end = query_slurm_end(options_.slurm_job_id);
    lock.lock();
    // A failed query keeps the last known end: a busy controller does not lift the deadline.
    if (end) end_ = end;
  } while (!wake_.wait_for(lock, period, [this] { return stopping_; }));
}

}  // namespace resumable
