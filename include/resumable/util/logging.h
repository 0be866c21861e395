// Rank-aware logging: every line carries "[rank r/w]"; rank 0 logs progress, the other ranks only
// warnings and errors unless RESUMABLE_LOG_ALL_RANKS=1. spdlog does the work behind this
// interface, which stays free of spdlog and fmt: the torch headers ship an fmt of their own that
// clashes with the one Debian's spdlog is built on. Torch code formats through resumable/log.h.
#pragma once

#include <string>

namespace resumable {

struct LogOptions {
  bool to_stderr = false;    // for commands whose stdout is their answer (--dry-run's plan)
  bool errors_only = false;  // nothing below an error (--print-config: its JSON is all it prints)
};
void init_logging(int rank, int world_size, LogOptions options = {});
bool logging_ready();
void log_info(const std::string& message);
void log_warn(const std::string& message);
void log_error(const std::string& message);
// A warning about what the user gave (an old flag or key name), said while the command line and the
// config file are read, before the log exists: one line "trainer: warning: ..." on stderr, or the log
// once it is up. Only rank 0 says it: every rank reads the same command line and files.
void warn_about_input(const std::string& message);
bool stdout_is_terminal();

}  // namespace resumable
