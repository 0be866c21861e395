#include "resumable/util/logging.h"

#include <cstdio>
#include <cstdlib>
#include <unistd.h>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "resumable/distributed/launch_env.h"

namespace resumable {

void init_logging(int rank, int world_size, LogOptions options) {
  spdlog::drop("trainer");
  auto logger = options.to_stderr ? spdlog::stderr_logger_mt("trainer") : spdlog::stdout_logger_mt("trainer");
  logger->set_pattern("[%Y-%m-%d %H:%M:%S] [rank " + std::to_string(rank) + "/" + std::to_string(world_size) +
                      "] %^%l%$: %v");
  const char* all = std::getenv("RESUMABLE_LOG_ALL_RANKS");
  bool verbose = rank == 0 || (all && std::string(all) == "1");
  logger->set_level(options.errors_only ? spdlog::level::err : verbose ? spdlog::level::info : spdlog::level::warn);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

bool logging_ready() { return spdlog::get("trainer") != nullptr; }
void log_info(const std::string& message) { spdlog::info("{}", message); }
void log_warn(const std::string& message) { spdlog::warn("{}", message); }
void log_error(const std::string& message) { spdlog::error("{}", message); }
void warn_about_input(const std::string& message) {
  int rank = 0;
  try {
    rank = detect_launch_env(process_env()).rank;
  } catch (const std::exception&) {
    // A malformed launcher variable is reported where the launch is set up; say the warning here.
  }
  if (rank != 0) return;
  if (logging_ready()) log_warn(message);
  else std::fprintf(stderr, "trainer: warning: %s\n", message.c_str());
}

bool stdout_is_terminal() { return ::isatty(1) == 1; }

}  // namespace resumable
