// Crash-proof file replacement: write a temporary file in the target's directory, fsync it, rename
// it over the target, fsync the directory. At every instant the target is either the complete old
// file or the complete new one; a writer that dies leaves at most a hidden temporary file
// (".NAME.tmp.PID"), removed by remove_stale_temporaries() on the next start.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace resumable {

class AtomicFileWriter {
 public:
  // Creates the temporary file next to `path`. Throws SaveError naming `path` on failure.
  explicit AtomicFileWriter(std::string path);
  ~AtomicFileWriter();  // not committed: closes and deletes the temporary file
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t size);  // throws SaveError (disk full, quota, EFBIG, ...)
  // fsync + rename over the target + fsync of the directory. Throws SaveError; the target is then
  // unchanged and the temporary file removed.
  void commit();
  // Like commit(), but publishes the written bytes under every name in `paths` (hard links, or
  // copies where the file system has none), each replaced atomically.
  void commit_as(const std::vector<std::string>& paths);

  size_t bytes_written() const { return written_; }
  const std::string& temporary_path() const { return temp_; }

 private:
  void sync_and_close();
  std::string path_;
  std::string temp_;
  int fd_ = -1;
  size_t written_ = 0;
  bool committed_ = false;
};

// Atomically gives `target` the contents of the existing file `source` (hard link, else copy).
void publish_copy(const std::string& source, const std::string& target);
void fsync_directory(const std::string& dir);
// Deletes ".*.tmp.*" files left in `dir` by writers that died; returns how many.
int remove_stale_temporaries(const std::string& dir);

// Test-only switch: RESUMABLE_TEST_WRITE_DELAY_MS=N makes every 64 KiB written, the fsync and the
// rename wait N ms, so fault tests can kill a writer at chosen instants. Unset in real runs.
int test_write_delay_ms();

}  // namespace resumable
