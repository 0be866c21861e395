// The errors a user can cause, and the exit codes they map to. Each carries one line that names
// the file, field or flag and what was expected; main() prints it without a stack trace.
#pragma once

#include <stdexcept>
#include <string>

namespace resumable {

// Documented in `trainer --help` and README; launch scripts branch on them.
namespace exit_code {
constexpr int kDone = 0;
constexpr int kRuntimeError = 1;   // a bug, a dead peer, an unreadable checkpoint, ...
constexpr int kBadInput = 2;       // bad config, flag or dataset: rerunning will not help
constexpr int kRunDirectoryBusy = 69;  // another job holds the run directory's lock: retry later
constexpr int kSaveFailed = 74;    // a checkpoint could not be written (disk full, read-only, ...)
constexpr int kStoppedBySignal = 75;  // SIGTERM/SIGINT/SIGUSR1: saved, resume to continue (requeue)
// Another rank died or stopped answering: the survivors saved the last step they completed (the
// log says so, or why they could not); restart to continue (sysexits' EX_PROTOCOL).
constexpr int kPeerLost = 76;
}  // namespace exit_code

// Bad configuration or command line (exit 2).
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bad or missing dataset (exit 2).
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The run directory's lock is held by another job, or by a tool for longer than a job waits for
// it (exit 69, sysexits' EX_UNAVAILABLE). Nothing is wrong with the run: the launch scripts retry
// after a pause, and it starts once the holder has let go.
class RunDirectoryBusy : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A checkpoint that cannot be read or does not fit this run (exit 1): always names the file.
// Only damage may make a resume fall back to an older checkpoint; a file that cannot be read
// right now, or that a newer trainer wrote, is left alone and the run stops.
class CheckpointError : public std::runtime_error {
 public:
  enum class Kind {
    kDamaged,       // checksum, structure, truncation, contents that do not fit: the file is bad
    kUnreadable,    // the file system refused (EACCES, EIO, ESTALE, ...): the file may be fine
    kIncompatible,  // written by a newer trainer (format version): upgrade, the file is fine
  };
  explicit CheckpointError(const std::string& what, Kind kind = Kind::kDamaged)
      : std::runtime_error(what), kind_(kind) {}
  Kind kind() const { return kind_; }
  bool damaged() const { return kind_ == Kind::kDamaged; }

 private:
  Kind kind_;
};

// A checkpoint that could not be written (exit 74); the previous checkpoint is untouched.
// `error_code` is the errno behind it (0 when none), so callers can tell a full disk.
class SaveError : public std::runtime_error {
 public:
  explicit SaveError(const std::string& what, int error_code = 0)
      : std::runtime_error(what), error_code_(error_code) {}
  int error_code() const { return error_code_; }

 private:
  int error_code_;
};

}  // namespace resumable
