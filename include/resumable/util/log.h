// fmt-style logging for the torch-based sources: log::info("step {}", n). Formats with the fmt
// that ships with torch (header-only), then hands the line to logging.h.
#pragma once

#include <fmt/format.h>

#include "resumable/util/logging.h"

namespace resumable::log {

template <class... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  log_info(fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  log_warn(fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
  log_error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace resumable::log
