// Saves that beat the deadline without a signal. A job's end is known in advance: under Slurm
// from the job's end time (`squeue -h -j $SLURM_JOB_ID -o %e`, read again now and then, since
// `scontrol update TimeLimit` moves it), or from --deadline. The trainer measures its own save and
// step times, and when the time left no longer covers two saves, a step and the margin, the ranks
// stop at one step, rank 0 saves, and all exit 75: before any signal, which srun turns into a
// SIGKILL and a node going away never sends.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace resumable {

using WallClock = std::chrono::system_clock;

// --deadline: seconds from `start` ("3600", "5400.5") or a local ISO time ("2026-11-26T21:30",
// "2026-11-26T21:30:00", "...Z" for UTC). nullopt when `text` is neither.
std::optional<WallClock::time_point> parse_deadline(const std::string& text, WallClock::time_point start);
// squeue's %e: a local time "YYYY-MM-DDTHH:MM:SS"; nullopt for "Unknown", "N/A", "NONE" and the like.
std::optional<WallClock::time_point> parse_slurm_end_time(const std::string& text);
// "2026-11-26T21:30:00" in local time.
std::string iso_local_time(WallClock::time_point t);

// When the time left no longer covers a save now, a save that fails and is retried (hence two),
// the step in progress and the margin.
inline bool deadline_due(double seconds_left, double save_seconds, double step_seconds, double margin_seconds) {
  return seconds_left < 2 * save_seconds + step_seconds + margin_seconds;
}

// The margin in effect: --deadline-margin-s, but at most a quarter of the time the run had when it
// started, so that a short job (a 1-minute test allocation) still trains before it saves.
inline double effective_margin(double margin_seconds, double seconds_from_start_to_end) {
  return std::max(0.0, std::min(margin_seconds, 0.25 * seconds_from_start_to_end));
}

// The largest of the last `n` values: a slow save or step a minute ago still counts.
class MovingMax {
 public:
  explicit MovingMax(size_t n) : n_(n) {}
  void add(double v);
  bool empty() const { return values_.empty(); }
  double value() const;  // 0 when empty

 private:
  size_t n_;
  std::deque<double> values_;
};

// Rank 0's view of the job's end. With Slurm, a thread reads squeue every `refresh_seconds`, so a
// slow controller never delays a step, and the exit never waits for it either: the thread is
// detached and owns what it touches with the Deadline, so a deadline save's exit is not held past
// Slurm's KillWait by a query in flight (squeue is bounded at 30 s).
class Deadline {
 public:
  struct Options {
    std::string deadline;  // --deadline, or empty (Slurm's end, if any), or "none" (no deadline at all)
    std::string slurm_job_id;  // SLURM_JOB_ID, or empty
    double refresh_seconds = 60;
    WallClock::time_point start = WallClock::now();
  };
  // Throws std::invalid_argument for a --deadline that parse_deadline() refuses.
  explicit Deadline(Options options);
  ~Deadline();
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  // The end as last known; nullopt when there is none (no --deadline, no Slurm limit) or Slurm's
  // has not been read yet.
  std::optional<WallClock::time_point> end() const;
  // "--deadline", "Slurm job 12 (squeue)", or "" when there is no deadline source.
  const std::string& source() const { return source_; }
  bool watched() const { return !source_.empty(); }

 private:
  // What the refresh thread shares with the Deadline; whichever ends last frees it.
  struct Shared {
    std::mutex mutex;
    std::condition_variable wake;
    std::optional<WallClock::time_point> end;
    bool stopping = false;
  };
  static void refresh_loop(std::shared_ptr<Shared> shared, std::string job_id, double refresh_seconds);
  Options options_;
  std::string source_;
  std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
};

}  // namespace resumable
