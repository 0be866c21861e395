// The one form of every `--help` the trainer prints (`trainer`, `trainer ckpt ...`, `trainer
// predict`): a usage line, what the command does, options in titled groups, each flag with its
// help beside it, wrapped to 100 columns, then a closing paragraph (exit codes, notes).
#pragma once

#include <string>
#include <vector>

namespace resumable {

struct HelpOption {
  std::string flags;  // "--keep-last N", "-o, --output FILE", or a subcommand "list RUN_DIR"
  std::string help;   // one paragraph: wrapped, never cut
};

struct HelpGroup {
  std::string title;  // "Checkpointing and resume"
  std::vector<HelpOption> options;
};

struct HelpPage {
  std::string usage;   // after "usage: "
  std::string about;   // lines as given, under the usage line
  std::vector<HelpGroup> groups;
  std::string footer;  // lines as given, last
};

std::string format_help(const HelpPage& page);
// `text` wrapped at spaces to lines of at most `width` columns (a longer word stays whole).
std::string wrap_text(const std::string& text, size_t width = 100);

}  // namespace resumable
