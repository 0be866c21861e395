// One job per run directory. Rank 0 holds an exclusive lock on RUN_DIR/.lock for the job's life,
// so two jobs can never delete each other's temporary files, replace each other's last.pt or
// prune each other's snapshots (a requeue racing the old job, a second mpirun by mistake,
// `--resume never --force` while the old job still runs). The lock is flock(2): the kernel (or the
// NFS lock manager) drops it when its holder dies however it dies, so a lock left by a crashed
// job is simply taken over. The file also names its holder (host, pid, start time) for messages.
#pragma once

#include <string>

namespace resumable {

struct LockHolder {
  std::string host;
  long pid = 0;
  std::string since;  // local time the lock was taken, "YYYY-MM-DD HH:MM:SS"

  std::string describe() const;  // "pid 123 on host h since 2026-..."
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
  // Creates `run_dir` if needed and takes the lock without waiting. Throws ConfigError (exit 2)
  // naming the holder when another process holds it.
  explicit RunDirectoryLock(const std::string& run_dir);
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
