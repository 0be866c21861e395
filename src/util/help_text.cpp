#include "resumable/util/help_text.h"

#include <algorithm>
#include <sstream>

namespace resumable {
namespace {

constexpr size_t kWidth = 100;      // columns of a help page
constexpr size_t kFlagColumn = 34;  // where help text starts; longer flags put it on the next line

// `text` wrapped at word boundaries into lines of at most `width` columns (a longer word is kept
// whole), the first line not indented, the others by `indent`.
std::string wrap(const std::string& text, size_t indent, size_t width) {
  std::istringstream words(text);
  std::string out, line, word;
  while (words >> word) {
    if (!line.empty() && line.size() + 1 + word.size() > width) {
      out += line + "\n" + std::string(indent, ' ');
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
  }
  return out + line;
}

}  // namespace

std::string wrap_text(const std::string& text, size_t width) { return wrap(text, 0, width); }

std::string format_help(const HelpPage& page) {
  std::string out = "usage: " + page.usage + "\n";
  if (!page.about.empty()) out += page.about + (page.about.back() == '\n' ? "" : "\n");
  for (const auto& group : page.groups) {
    out += "\n" + group.title + ":\n";
    for (const auto& o : group.options) {
      std::string line = "  " + o.flags;
      if (o.help.empty()) {
        out += line + "\n";
        continue;
      }
      if (line.size() + 2 > kFlagColumn) out += line + "\n" + std::string(kFlagColumn, ' ');
      else out += line + std::string(kFlagColumn - line.size(), ' ');
      out += wrap(o.help, kFlagColumn, kWidth - kFlagColumn) + "\n";
    }
  }
  if (!page.footer.empty()) out += "\n" + page.footer + (page.footer.back() == '\n' ? "" : "\n");
  return out;
}

}  // namespace resumable
