// One job per run directory. Rank 0 holds an exclusive lock on RUN_DIR/.lock for the job's life,
// so two jobs can never delete each other's temporary files, replace each other's last.pt or
// prune each other's snapshots (a requeue racing the old job, a second mpirun by mistake,
// `--resume never --force` while the old job still runs). The lock is flock(2): the kernel (or the
// NFS lock manager) drops it when its holder dies however it dies, so a lock left by a crashed
// job is simply taken over. The file also names its holder (host, pid, start time, and the tool
// when a tool such as `trainer ckpt clean` holds it) for messages, and so that a job can tell a
// tool's brief hold, which it waits out, from another job's.
#pragma once

#include <chrono>
#include <string>

namespace resumable {

struct LockHolder {
  std::string host;
  long pid = 0;
  std::string since;  // local time the lock was taken, "YYYY-MM-DD HH:MM:SS"
  std::string tool;   // the tool holding it ("ckpt clean"); empty for a training job

  std::string describe() const;  // "pid 123 on host h since 2026-...", after "`trainer T`, " for a tool
};

struct RunDirectoryLockOptions {
  // Who takes the lock: empty for a training job, else the tool's name ("ckpt clean"), recorded
  // in the file for the holder's messages and for the wait below.
  std::string tool;
  // How long to wait while a tool holds the lock (it holds it for seconds) before giving up as on
  // a busy directory; zero: never wait. A lock held by a training job is never waited for.
  std::chrono::milliseconds tool_wait{0};
};

// The lock as it stands, looked at without taking it (--dry-run): nothing is created or written.
struct LockProbe {
  bool exists = false;  // RUN_DIR/.lock is there
  bool held = false;    // another process holds it now: a start would be refused
  LockHolder holder;    // whom the file names (empty host: nobody): the holder when held, else one
                        // that ended without releasing it, whose lock a start takes over
  std::string refusal;  // what a start would stop with (held, or the file cannot be opened); "" if none
};

class RunDirectoryLock {
 public:
  // Creates `run_dir` if needed and takes the lock. When a tool holds it, waits up to
  // options.tool_wait for it to let go, saying once that it waits and for whom. Throws
  // RunDirectoryBusy (exit 69) naming the holder when another job holds it, or a tool still does
  // after the wait; ConfigError (exit 2) when the directory or its lock file cannot be made.
  explicit RunDirectoryLock(const std::string& run_dir, const RunDirectoryLockOptions& options = {});
  ~RunDirectoryLock() { release(); }
  // Clears the holder record and drops the lock. The file stays: removing it would race a new holder.
  void release();
  // Whether a start could take the lock now, and whom the file names. Takes a shared lock for an
  // instant (it fails exactly while a holder has the exclusive one) and writes nothing.
  static LockProbe probe(const std::string& run_dir);
  RunDirectoryLock(const RunDirectoryLock&) = delete;
  RunDirectoryLock& operator=(const RunDirectoryLock&) = delete;

  const std::string& path() const { return path_; }
  // The holder the file still named when we took the lock: a process that let go without an
  // orderly release (it crashed or was killed); empty otherwise.
  const std::string& taken_over_from() const { return taken_over_from_; }

 private:
  std::string path_;
  int fd_ = -1;
  std::string taken_over_from_;
};

}  // namespace resumable
