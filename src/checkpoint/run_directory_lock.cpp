#include "resumable/checkpoint/run_directory_lock.h"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <sys/file.h>
#include <thread>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "resumable/util/atomic_file.h"
#include "resumable/util/errors.h"
#include "resumable/util/logging.h"
#include "resumable/distributed/launch_env.h"

namespace resumable {
namespace {

std::string now_text() {
  char buf[32];
  std::time_t t = std::time(nullptr);
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", std::localtime(&t));
  return buf;
}

std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  off_t pos = 0;
  while ((n = ::pread(fd, buf, sizeof buf, pos)) > 0) {
    out.append(buf, static_cast<size_t>(n));
    pos += n;
    if (out.size() > (1 << 16)) break;  // not ours: a holder record is tiny
  }
  return out;
}

// The holder a lock file names; an empty host when the file is empty or not ours.
LockHolder parse_holder(const std::string& text) {
  LockHolder h;
  try {
    auto j = nlohmann::json::parse(text);
    h.host = j.at("host").get<std::string>();
    h.pid = j.at("pid").get<long>();
    h.since = j.at("since").get<std::string>();
    h.tool = j.value("tool", std::string());  // absent: a training job (or one from before tools named themselves)
  } catch (const std::exception&) {
    h = LockHolder{};
  }
  return h;
}

// How long a lock may name no holder before it counts as held by a job: a holder names itself
// right after it takes the lock, and clears its name right before it lets go.
constexpr std::chrono::seconds kUnnamedGrace{1};
constexpr std::chrono::milliseconds kPollInterval{200};

std::string seconds_text(std::chrono::steady_clock::duration d) {
  const double s = std::chrono::duration<double>(d).count();
  char buf[32];
  std::snprintf(buf, sizeof buf, s < 10 ? "%.1f s" : "%.0f s", s);
  return buf;
}

std::string busy_message(const std::string& run_dir, const std::string& path, const LockHolder& h) {
  return run_dir + " is in use by another job (" + (h.host.empty() ? std::string("holder unknown") : h.describe()) +
         ", lock " + path + "): stop that job first, or give this one another --run-dir";
}

}  // namespace

std::string LockHolder::describe() const {
  return (tool.empty() ? std::string() : "`trainer " + tool + "`, ") + "pid " + std::to_string(pid) + " on host " +
         host + " since " + since;
}

RunDirectoryLock::RunDirectoryLock(const std::string& run_dir, const RunDirectoryLockOptions& options)
    : path_(run_dir + "/.lock") {
  try {
    create_directories(run_dir);
  } catch (const SaveError& e) {
    throw ConfigError(std::string(e.what()) + " (--run-dir)");
  }
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw ConfigError(path_ + ": cannot open the run directory's lock file: " + std::strerror(errno));
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  bool said_so = false;
  while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EINTR) continue;
    const LockHolder h = parse_holder(read_all(fd_));
    const auto waited = Clock::now() - start;
    const bool unnamed = h.host.empty() && waited < kUnnamedGrace;
    const bool tool = err == EWOULDBLOCK && !h.tool.empty() && waited < options.tool_wait;
    if (err == EWOULDBLOCK && (unnamed || tool)) {
      if (tool && !said_so) {
        log_warn(run_dir + " is locked by " + h.describe() + ": waiting up to " + seconds_text(options.tool_wait) +
                 " for it to finish (lock " + path_ + ")");
        said_so = true;
      }
      std::this_thread::sleep_for(kPollInterval);
      continue;
    }
    ::close(fd_);
    fd_ = -1;
    if (err != EWOULDBLOCK) throw ConfigError(path_ + ": cannot lock the run directory: " + std::strerror(err));
    if (!h.tool.empty())
      throw RunDirectoryBusy(run_dir + " is in use by " + h.describe() + " (lock " + path_ + ")" +
                             (said_so ? ", still after " + seconds_text(waited) : std::string()) +
                             ": try again once it has finished");
    throw RunDirectoryBusy(busy_message(run_dir, path_, h));
  }
  if (said_so) log_info(path_ + ": the tool let go; took the lock after " + seconds_text(Clock::now() - start));
  // Ours now. A holder the file still names let go without clearing it: it crashed or was killed.
  LockHolder before = parse_holder(read_all(fd_));
  LockHolder me{host_name(), static_cast<long>(::getpid()), now_text(), options.tool};
  if (!before.host.empty() && !(before.host == me.host && before.pid == me.pid))
    taken_over_from_ = before.describe();
  nlohmann::json record = {{"host", me.host}, {"pid", me.pid}, {"since", me.since}};
  if (!me.tool.empty()) record["tool"] = me.tool;
  const std::string text = record.dump() + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
    int err = errno;
    release();
    throw ConfigError(path_ + ": cannot write the lock holder: " + std::strerror(err));
  }
}

LockProbe RunDirectoryLock::probe(const std::string& run_dir) {
  LockProbe p;
  const std::string path = run_dir + "/.lock";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) {
      p.exists = true;
      p.refusal = path + ": cannot open the run directory's lock file: " + std::strerror(errno);
    }
    return p;
  }
  p.exists = true;
  if (::access(path.c_str(), W_OK) != 0) {  // a start opens it for writing
    p.refusal = path + ": cannot open the run directory's lock file: " + std::strerror(errno);
    ::close(fd);
    return p;
  }
  if (::flock(fd, LOCK_SH | LOCK_NB) == 0) {
    ::flock(fd, LOCK_UN);
  } else if (errno == EWOULDBLOCK) {
    p.held = true;
  } else {
    p.refusal = path + ": cannot lock the run directory: " + std::strerror(errno);
  }
  p.holder = parse_holder(read_all(fd));
  ::close(fd);
  if (p.held) p.refusal = busy_message(run_dir, path, p.holder);
  return p;
}

void RunDirectoryLock::release() {
  if (fd_ < 0) return;
  // An orderly end clears the record, so the next holder can tell a crash from a clean exit.
  (void)!::ftruncate(fd_, 0);
  ::close(fd_);  // closing drops the flock
  fd_ = -1;
}

}  // namespace resumable
