#include "resumable/config/cli.h"

#include <gtest/gtest.h>

#include <vector>

using namespace resumable;

namespace {
CliArgs parse(std::vector<const char*> argv) {
  argv.insert(argv.begin(), "trainer");
  return parse_cli(static_cast<int>(argv.size()), argv.data());
}
std::string error_of(std::vector<const char*> argv) {
  try {
    parse(std::move(argv));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Cli, FlagsBecomeOverridesInOrder) {
  CliArgs a = parse({"--config", "c.json", "--max-steps", "7", "--run-dir", "/tmp/r", "--resume", "never", "--force"});
  EXPECT_EQ(*a.config_path, "c.json");
  TrainConfig c = apply_overrides(TrainConfig{}, a);
  EXPECT_EQ(c.max_steps, 7);
  EXPECT_EQ(c.run_dir, "/tmp/r");
  EXPECT_EQ(c.resume_from, "never");
  EXPECT_TRUE(c.force);
  EXPECT_TRUE(a.overrides_field("max_steps"));
  EXPECT_FALSE(a.overrides_field("epochs"));
}

TEST(Cli, ModesAreRecognized) {
  EXPECT_TRUE(parse({"--eval"}).eval);
  EXPECT_TRUE(parse({"--help"}).help);
  EXPECT_TRUE(parse({"--print-config"}).print_config);
  EXPECT_FALSE(parse({}).eval);
}

TEST(Cli, EnsembleTakesCommaSeparatedCheckpointsWithEvalOnly) {
  EXPECT_EQ(parse({"--eval", "--ensemble", "a.pt,runs/b/checkpoints/best.pt,"}).ensemble,
            (std::vector<std::string>{"a.pt", "runs/b/checkpoints/best.pt"}));
  EXPECT_TRUE(parse({"--eval"}).ensemble.empty());
  EXPECT_NE(error_of({"--ensemble", "a.pt"}).find("--ensemble: only with --eval"), std::string::npos);
  EXPECT_NE(error_of({"--eval", "--ensemble", ","}).find("--ensemble: expected checkpoint files"), std::string::npos);
  EXPECT_EQ(comma_separated(",a,,b"), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(comma_separated("").empty());
}

TEST(Cli, BadFlagsAreOneLineErrors) {
  EXPECT_NE(error_of({"--no-such-flag", "1"}).find("no-such-flag"), std::string::npos);
  EXPECT_NE(error_of({"stray"}).find("unexpected argument 'stray'"), std::string::npos);
  EXPECT_NE(error_of({"--epochs"}).find("epochs"), std::string::npos);
}

TEST(Cli, OverrideValuesAreValidated) {
  CliArgs a = parse({"--dropout", "2"});
  try {
    apply_overrides(TrainConfig{}, a);
    FAIL() << "dropout 2 accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("field 'dropout'"), std::string::npos);
  }
}

TEST(Cli, HelpListsEveryConfigKey) {
  std::string help = cli_help_text();
  for (const auto& f : config_fields()) EXPECT_NE(help.find("--" + f.flag), std::string::npos) << f.flag;
}

TEST(Cli, BooleanKeysTakeEveryForm) {
  // --key, --key=value and --key value, as the stray-argument error promises.
  EXPECT_TRUE(apply_overrides(TrainConfig{}, parse({"--length-bucketing"})).length_bucketing);
  TrainConfig on = TrainConfig{};
  on.length_bucketing = true;
  EXPECT_FALSE(apply_overrides(on, parse({"--length-bucketing=false"})).length_bucketing);
  EXPECT_FALSE(apply_overrides(on, parse({"--length-bucketing", "false"})).length_bucketing);
  EXPECT_TRUE(apply_overrides(TrainConfig{}, parse({"--length-bucketing", "true", "--max-steps", "3"})).length_bucketing);
  EXPECT_FALSE(apply_overrides(on, parse({"--force", "--length-bucketing", "0"})).length_bucketing);
  // A value flag is untouched: "--max-steps 1" stays a number, and a word after a boolean is still stray.
  EXPECT_EQ(apply_overrides(TrainConfig{}, parse({"--max-steps", "1"})).max_steps, 1);
  EXPECT_NE(error_of({"--length-bucketing", "maybe"}).find("unexpected argument 'maybe'"), std::string::npos);
}

TEST(Cli, HelpListsTheTools) {
  std::string help = cli_help_text();
  for (const char* tool : {"ckpt list", "info", "verify", "diff", "clean", "backup", "export", "trainer predict"})
    EXPECT_NE(help.find(tool), std::string::npos) << tool;
}

TEST(Cli, DebugMakesEvaluationSmallAndSavesSynchronous) {
  CliArgs a = parse({"--debug"});
  EXPECT_TRUE(a.debug);
  TrainConfig c = apply_overrides(TrainConfig{}, a);
  EXPECT_EQ(c.eval_limit, 256);
  EXPECT_FALSE(c.async_save);
  EXPECT_EQ(c.log_every_steps, 10);
  // A smaller evaluation the user asked for stays; so does the config without --debug.
  TrainConfig d = apply_overrides(TrainConfig{}, parse({"--debug", "--eval-limit", "100", "--log-every-steps", "5"}));
  EXPECT_EQ(d.eval_limit, 100);
  EXPECT_EQ(d.log_every_steps, 5);
  TrainConfig plain = apply_overrides(TrainConfig{}, parse({}));
  EXPECT_FALSE(parse({}).debug);
  EXPECT_EQ(plain.eval_limit, 0);
  EXPECT_TRUE(plain.async_save);
}
