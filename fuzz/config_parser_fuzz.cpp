// Fuzzes the config parser: arbitrary bytes as a config file, and as a "--flag value" pair.
// Anything may be refused with ConfigError; nothing may crash, hang or leak.
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "resumable/config/config.h"

using namespace resumable;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto j = nlohmann::json::parse(text);
    TrainConfig c = config_from_json(j, "fuzz.json");
    validate(c, "fuzz.json");
    // Whatever validates must survive a round trip unchanged.
    TrainConfig back = config_from_json(config_to_json(c), "round trip");
    if (!diff_configs(c, back).empty()) __builtin_trap();
  } catch (const nlohmann::json::exception&) {
  } catch (const ConfigError&) {
  }
  // The same bytes as a command-line value for each field.
  auto nl = text.find('\n');
  std::string name = text.substr(0, nl == std::string::npos ? text.size() : nl);
  std::string value = nl == std::string::npos ? "" : text.substr(nl + 1);
  for (const auto& f : config_fields()) {
    TrainConfig c;
    try {
      set_field_from_string(c, f.name, value, "fuzz");
      validate(c, "fuzz");
    } catch (const ConfigError&) {
    }
  }
  try {
    TrainConfig c;
    set_field_from_string(c, name, value, "fuzz");
  } catch (const ConfigError&) {
  }
  return 0;
}
