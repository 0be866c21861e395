#include "resumable/util/atomic_file.h"

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <dirent.h>

#include "resumable/util/errors.h"

namespace resumable {
namespace {

std::string dir_of(const std::string& path) { return parent_directory(path); }
std::string base_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}
std::string temp_name_for(const std::string& path) {
  static int counter = 0;
  std::string d = dir_of(path);
  return (d == "." && path.find('/') == std::string::npos ? "" : d + "/") + "." + base_of(path) + ".tmp." +
         std::to_string(getpid()) + "." + std::to_string(counter++);
}
[[noreturn]] void fail(const std::string& path, const std::string& what, int err) {
  throw SaveError(path + ": " + what + ": " + std::strerror(err), err);
}
void delay() {
  if (int ms = test_write_delay_ms()) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

}  // namespace

int test_write_delay_ms() {
  static const int ms = [] {
    const char* v = std::getenv("RESUMABLE_TEST_WRITE_DELAY_MS");
    return v ? std::atoi(v) : 0;
  }();
  return ms;
}

// O_DIRECT needs buffers, lengths and file offsets aligned to the device's logical block; 4 KiB
// covers every common one (a file system that wants more refuses, and the writer falls back).
constexpr size_t kDirectAlignment = 4096;
constexpr size_t kStagingBytes = 8 << 20;
constexpr size_t kDelayChunk = 64 << 10;

void AtomicFileWriter::FreeDeleter::operator()(char* p) const { std::free(p); }

AtomicFileWriter::AtomicFileWriter(std::string path, Caching caching)
    : path_(std::move(path)), temp_(temp_name_for(path_)) {
  fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(path_, "cannot create temporary file in " + dir_of(path_), errno);
  if (caching == Caching::kDirect) {
    // Under the test delay the file grows 64 KiB at a time, as the fault tests expect.
    staging_capacity_ = test_write_delay_ms() ? kDelayChunk : kStagingBytes;
    staging_.reset(static_cast<char*>(std::aligned_alloc(kDirectAlignment, staging_capacity_)));
    const int flags = ::fcntl(fd_, F_GETFL);
    // tmpfs, some FUSE and network file systems refuse O_DIRECT: ordinary writes then.
    direct_ = staging_ && flags >= 0 && ::fcntl(fd_, F_SETFL, flags | O_DIRECT) == 0;
    if (!direct_) staging_.reset();
  }
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_.c_str());
}

void AtomicFileWriter::write(const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  if (!direct_) return write_to_file(p, size);
  while (size > 0) {
    const size_t n = std::min(size, staging_capacity_ - staged_);
    std::memcpy(staging_.get() + staged_, p, n);
    staged_ += n;
    p += n;
    size -= n;
    if (staged_ == staging_capacity_) flush_staged(false);
  }
}

void AtomicFileWriter::flush_staged(bool final) {
  // Whole blocks with O_DIRECT; at the end, the last partial block through the page cache.
  const size_t whole = final ? staged_ / kDirectAlignment * kDirectAlignment : staged_;
  const size_t before = staged_;
  staged_ = 0;
  write_to_file(staging_.get(), whole);
  if (whole < before) {
    leave_direct_mode();
    write_to_file(staging_.get() + whole, before - whole);
  }
}

void AtomicFileWriter::leave_direct_mode() {
  if (!direct_) return;
  direct_ = false;
  const int flags = ::fcntl(fd_, F_GETFL);
  if (flags < 0 || ::fcntl(fd_, F_SETFL, flags & ~O_DIRECT) != 0) fail(path_, "cannot leave O_DIRECT mode", errno);
}

void AtomicFileWriter::write_to_file(const char* p, size_t size) {
  while (size > 0) {
    size_t n = test_write_delay_ms() ? std::min(size, kDelayChunk) : size;
    ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      // A file system that took the flag but refuses this write: the page cache then.
      if (errno == EINVAL && direct_) {
        leave_direct_mode();
        continue;
      }
      fail(path_, "cannot write", errno);
    }
    // A short direct write leaves the rest unaligned.
    if (direct_ && static_cast<size_t>(w) % kDirectAlignment != 0) leave_direct_mode();
    p += w;
    size -= static_cast<size_t>(w);
    const size_t before = written_;
    written_ += static_cast<size_t>(w);
    // One delay per 64 KiB crossed, however the writes are cut (the archive comes in pieces).
    if (test_write_delay_ms() && written_ / kDelayChunk != before / kDelayChunk) delay();
  }
}

void AtomicFileWriter::sync_and_close() {
  if (staging_) {
    flush_staged(true);
    staging_.reset();
  }
  delay();
  if (::fsync(fd_) != 0) fail(path_, "cannot fsync", errno);
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail(path_, "cannot close", errno);  // NFS reports write errors here
  delay();
}

void AtomicFileWriter::commit() {
  Published p = commit_as({path_});
  if (!p.problems.empty()) throw SaveError(p.problems.front());
}

AtomicFileWriter::Published AtomicFileWriter::commit_as(const std::vector<std::string>& paths) {
  sync_and_close();
  Published out;
  for (size_t i = 0; i < paths.size(); ++i) {
    try {
      if (i + 1 == paths.size()) {
        // The last name takes the temporary file itself.
        if (::rename(temp_.c_str(), paths[i].c_str()) != 0) fail(paths[i], "cannot rename into place", errno);
        committed_ = true;
      } else {
        publish_copy(temp_, paths[i]);
      }
      out.names.push_back(paths[i]);
    } catch (const SaveError& e) {
      if (out.names.empty()) throw;  // nothing published: the caller's previous files are intact
      out.problems.push_back(e.what());
    }
  }
  if (paths.empty()) ::unlink(temp_.c_str()), committed_ = true;
  try {
    fsync_directory(dir_of(path_));
  } catch (const SaveError& e) {
    if (out.names.empty()) throw;
    out.problems.push_back(std::string(e.what()) + " (the new names are in place but may not survive a crash)");
  }
  return out;
}

void publish_copy(const std::string& source, const std::string& target) {
  std::string temp = temp_name_for(target);
  if (::link(source.c_str(), temp.c_str()) != 0) {
    if (errno != EPERM && errno != EXDEV && errno != ENOTSUP && errno != EMLINK && errno != ENOSYS)
      fail(target, "cannot link", errno);
    // No hard links here (some network and FAT file systems): copy the bytes instead.
    int in = ::open(source.c_str(), O_RDONLY | O_CLOEXEC);
    if (in < 0) fail(source, "cannot open", errno);
    AtomicFileWriter out(target);
    char buf[1 << 16];
    ssize_t n;
    while ((n = ::read(in, buf, sizeof buf)) > 0) out.write(buf, static_cast<size_t>(n));
    int err = errno;
    ::close(in);
    if (n < 0) fail(source, "cannot read", err);
    out.commit();
    return;
  }
  if (::rename(temp.c_str(), target.c_str()) != 0) {
    int err = errno;
    ::unlink(temp.c_str());
    fail(target, "cannot rename into place", err);
  }
}

void fsync_directory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail(dir, "cannot open directory", errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  // Some file systems refuse fsync on directories (EINVAL); the rename is then as durable as they allow.
  if (rc != 0 && err != EINVAL) fail(dir, "cannot fsync directory", err);
}

std::string parent_directory(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

void create_directories(const std::string& dir) {
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    std::string partial = dir.substr(0, pos);
    if (partial.empty() || partial == ".") continue;
    if (::mkdir(partial.c_str(), 0755) == 0) {
      // A new directory entry lives in its parent: without this fsync a crash may lose the
      // directory, and with it every checkpoint written inside.
      fsync_directory(parent_directory(partial));
    } else {
      int err = errno;
      struct stat st;
      // EEXIST, or EACCES for a parent that exists but is not ours to write: both are fine.
      if (::stat(partial.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) fail(partial, "cannot create directory", err);
    }
  }
}

int remove_stale_temporaries(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  int removed = 0;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.size() > 1 && name[0] == '.' && name.find(".tmp.") != std::string::npos)
      if (::unlink((dir + "/" + name).c_str()) == 0) ++removed;
  }
  ::closedir(d);
  return removed;
}

}  // namespace resumable
