// The command line of a tool (`trainer ckpt list ...`, `trainer predict ...`): positional
// arguments, options with a value (--key value or --key=value) and switches, each checked against
// what the tool declares, so a typo is a one-line error naming the tool and the flag.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace resumable {

struct ToolArgs {
  std::vector<std::string> positional;
  std::map<std::string, std::string> values;  // "--key" -> value
  std::set<std::string> switches;             // "--key"

  bool has(const std::string& flag) const { return switches.count(flag) || values.count(flag); }
  std::optional<std::string> value(const std::string& flag) const;
  // The value as an integer >= `min`; ConfigError naming the tool and flag otherwise.
  int64_t integer(const std::string& flag, int64_t fallback, int64_t min) const;

  std::string tool;  // for messages: "ckpt clean"
};

// Throws ConfigError "TOOL: unknown option '--x' (see trainer TOOL --help)" and the like.
// `renamed` maps a flag's old name to its new one: the old one is read as the new one, with a
// warning naming it (warn_about_input), for one release.
ToolArgs parse_tool_args(const std::string& tool, const std::vector<std::string>& args,
                         const std::set<std::string>& value_flags, const std::set<std::string>& switch_flags,
                         const std::map<std::string, std::string>& renamed = {});

}  // namespace resumable
