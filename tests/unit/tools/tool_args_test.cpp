#include "resumable/tools/tool_args.h"

#include <gtest/gtest.h>

#include "resumable/util/errors.h"

using namespace resumable;

namespace {
std::string error_of(const std::vector<std::string>& args) {
  try {
    parse_tool_args("ckpt clean", args, {"--keep-last", "-o"}, {"--dry-run"});
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(ToolArgs, PositionalValuesAndSwitches) {
  ToolArgs a = parse_tool_args("ckpt clean", {"run", "--keep-last", "2", "--dry-run", "-o=x.pt", "--", "--odd"},
                               {"--keep-last", "-o"}, {"--dry-run"});
  EXPECT_EQ(a.positional, (std::vector<std::string>{"run", "--odd"}));
  EXPECT_EQ(a.integer("--keep-last", 0, 1), 2);
  EXPECT_EQ(*a.value("-o"), "x.pt");
  EXPECT_TRUE(a.has("--dry-run"));
  EXPECT_FALSE(a.has("--json"));
  EXPECT_EQ(a.integer("--keep-every", 7, 0), 7);
}

TEST(ToolArgs, MistakesNameTheToolAndFlag) {
  EXPECT_EQ(error_of({"--kep-last", "1"}), "ckpt clean: unknown option '--kep-last' (see trainer ckpt clean --help)");
  EXPECT_NE(error_of({"--keep-last"}).find("--keep-last expects a value"), std::string::npos);
  EXPECT_NE(error_of({"--dry-run=yes"}).find("--dry-run takes no value"), std::string::npos);
  ToolArgs a = parse_tool_args("ckpt clean", {"--keep-last", "0"}, {"--keep-last"}, {});
  try {
    a.integer("--keep-last", 0, 1);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "ckpt clean: --keep-last: expected an integer >= 1, got '0'");
  }
  ToolArgs b = parse_tool_args("ckpt clean", {"--keep-last", "3x"}, {"--keep-last"}, {});
  EXPECT_THROW(b.integer("--keep-last", 0, 1), ConfigError);
}
