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
  // unchanged (unless only the directory fsync failed) and the temporary file removed.
  void commit();

  struct Published {
    std::vector<std::string> names;     // the names that now hold the new bytes, in order
    std::vector<std::string> problems;  // what failed once the first name was in place
  };
  // Publishes the written bytes under every name in `paths`, in order (hard links, or copies where
  // the file system has none), each replaced atomically, then fsyncs the directory. Throws
  // SaveError only while nothing is published yet (the fsync of the data, the first name): then
  // every target is unchanged. Once the first name holds the new bytes a failure can no longer
  // undo that, so later names and the directory fsync report their failures in `problems`.
  Published commit_as(const std::vector<std::string>& paths);

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
// mkdir -p that survives a crash: every directory it creates is fsynced in its parent.
void create_directories(const std::string& dir);
// The directory part of a path ("." for a bare name).
std::string parent_directory(const std::string& path);
// Deletes ".*.tmp.*" files left in `dir` by writers that died; returns how many.
int remove_stale_temporaries(const std::string& dir);

// Test-only switch: RESUMABLE_TEST_WRITE_DELAY_MS=N makes every 64 KiB written, the fsync and the
// rename wait N ms, so fault tests can kill a writer at chosen instants. Unset in real runs.
int test_write_delay_ms();

}  // namespace resumable
