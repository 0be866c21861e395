#include "resumable/tools/tool_args.h"

#include "resumable/util/errors.h"
#include "resumable/util/logging.h"

namespace resumable {

std::optional<std::string> ToolArgs::value(const std::string& flag) const {
  auto it = values.find(flag);
  if (it == values.end()) return std::nullopt;
  return it->second;
}

int64_t ToolArgs::integer(const std::string& flag, int64_t fallback, int64_t min) const {
  auto v = value(flag);
  if (!v) return fallback;
  size_t used = 0;
  int64_t n = 0;
  try {
    n = std::stoll(*v, &used);
  } catch (...) {
    used = 0;
  }
  if (used == 0 || used != v->size() || n < min)
    throw ConfigError(tool + ": " + flag + ": expected an integer >= " + std::to_string(min) + ", got '" + *v + "'");
  return n;
}

ToolArgs parse_tool_args(const std::string& tool, const std::vector<std::string>& args,
                         const std::set<std::string>& value_flags, const std::set<std::string>& switch_flags,
                         const std::map<std::string, std::string>& renamed) {
  ToolArgs out;
  out.tool = tool;
  const std::string see = " (see trainer " + tool + " --help)";
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.size() < 2 || a.rfind("-", 0) != 0 || a == "-") {
      out.positional.push_back(a);
      continue;
    }
    if (a == "--") {
      out.positional.insert(out.positional.end(), args.begin() + static_cast<long>(i) + 1, args.end());
      break;
    }
    std::string flag = a, value;
    bool inline_value = false;
    if (auto eq = a.find('='); eq != std::string::npos) {
      flag = a.substr(0, eq);
      value = a.substr(eq + 1);
      inline_value = true;
    }
    if (auto old = renamed.find(flag); old != renamed.end()) {
      warn_about_input(tool + ": " + flag + " is now " + old->second + " (the old name still works in this release)");
      flag = old->second;
    }
    if (value_flags.count(flag)) {
      if (!inline_value) {
        if (i + 1 >= args.size()) throw ConfigError(tool + ": " + flag + " expects a value" + see);
        value = args[++i];
      }
      out.values[flag] = value;
    } else if (switch_flags.count(flag)) {
      if (inline_value) throw ConfigError(tool + ": " + flag + " takes no value" + see);
      out.switches.insert(flag);
    } else {
      throw ConfigError(tool + ": unknown option '" + flag + "'" + see);
    }
  }
  return out;
}

}  // namespace resumable
