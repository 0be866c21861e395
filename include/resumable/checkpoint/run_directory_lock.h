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

class RunDirectoryLock {
 public:
  // Creates `run_dir` if needed and takes the lock without waiting. Throws ConfigError (exit 2)
  // naming the holder when another process holds it.
  explicit RunDirectoryLock(const std::string& run_dir);
  ~RunDirectoryLock() { release(); }
  // Clears the holder record and drops the lock. The file stays: removing it would race a new holder.
  void release();
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
