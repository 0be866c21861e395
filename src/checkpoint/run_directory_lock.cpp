#include "resumable/checkpoint/run_directory_lock.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "resumable/util/atomic_file.h"
#include "resumable/util/errors.h"
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
  } catch (const std::exception&) {
    h = LockHolder{};
  }
  return h;
}

std::string busy_message(const std::string& run_dir, const std::string& path, const LockHolder& h) {
  return run_dir + " is in use by another job (" + (h.host.empty() ? std::string("holder unknown") : h.describe()) +
         ", lock " + path + "): stop that job first, or give this one another --run-dir";
}

}  // namespace

std::string LockHolder::describe() const {
  return "pid " + std::to_string(pid) + " on host " + host + " since " + since;
}

RunDirectoryLock::RunDirectoryLock(const std::string& run_dir) : path_(run_dir + "/.lock") {
  try {
    create_directories(run_dir);
  } catch (const SaveError& e) {
    throw ConfigError(std::string(e.what()) + " (--run-dir)");
  }
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw ConfigError(path_ + ": cannot open the run directory's lock file: " + std::strerror(errno));
  LockHolder before = parse_holder(read_all(fd_));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    LockHolder h = parse_holder(read_all(fd_));
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK) throw ConfigError(busy_message(run_dir, path_, h));
    throw ConfigError(path_ + ": cannot lock the run directory: " + std::strerror(err));
  }
  // Ours now. A holder the file still names let go without clearing it: it crashed or was killed.
  LockHolder me{host_name(), static_cast<long>(::getpid()), now_text()};
  if (!before.host.empty() && !(before.host == me.host && before.pid == me.pid))
    taken_over_from_ = before.describe();
  std::string record = nlohmann::json{{"host", me.host}, {"pid", me.pid}, {"since", me.since}}.dump() + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, record.data(), record.size(), 0) != static_cast<ssize_t>(record.size())) {
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
