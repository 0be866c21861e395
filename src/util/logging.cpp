#include "resumable/util/logging.h"

#include <cstdlib>
#include <unistd.h>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

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
bool stdout_is_terminal() { return ::isatty(1) == 1; }

}  // namespace resumable
