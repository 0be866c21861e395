#include "resumable/config/cli.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "resumable/util/help_text.h"

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
  TrainConfig d = apply_overrides(TrainConfig{}, parse({"--debug", "--max-eval-words", "100", "--log-every-steps", "5"}));
  EXPECT_EQ(d.eval_limit, 100);
  EXPECT_EQ(d.log_every_steps, 5);
  TrainConfig plain = apply_overrides(TrainConfig{}, parse({}));
  EXPECT_FALSE(parse({}).debug);
  EXPECT_EQ(plain.eval_limit, 0);
  EXPECT_TRUE(plain.async_save);
}

TEST(Cli, HelpGroupsTheKeysByTopic) {
  const std::string help = cli_help_text();
  // Each topic's title, in order, and each key under its own topic's title.
  std::vector<size_t> starts;
  for (const auto& t : config_topics()) {
    size_t at = help.find("\n" + t.title + ":\n");
    ASSERT_NE(at, std::string::npos) << t.title;
    if (!starts.empty()) EXPECT_GT(at, starts.back()) << t.title;
    starts.push_back(at);
  }
  for (const auto& f : config_fields()) {
    const size_t i = static_cast<size_t>(f.topic);
    const size_t at = help.find("\n  --" + f.flag + " ");
    const size_t at_bool = help.find("\n  --" + f.flag + ", --no-" + f.flag);
    const size_t pos = std::min(at, at_bool);
    ASSERT_NE(pos, std::string::npos) << f.flag;
    EXPECT_GT(pos, starts[i]) << f.flag;
    if (i + 1 < starts.size()) EXPECT_LT(pos, starts[i + 1]) << f.flag;
  }
  EXPECT_NE(help.find("\nRun:\n  --config FILE"), std::string::npos);
  EXPECT_NE(help.find("validation and the test split"), std::string::npos);  // what --eval evaluates
  EXPECT_NE(help.find("does not shorten the LR schedule"), std::string::npos);  // max_steps
}

TEST(Cli, HelpNamesTheRenamedKeysAndTheShippedConfigs) {
  const std::string help = cli_help_text();
  EXPECT_NE(help.find("limit_words->max_train_words"), std::string::npos);
  EXPECT_NE(help.find("resume_from->resume"), std::string::npos);
  EXPECT_EQ(help.find("--limit-words"), std::string::npos);  // old flags work but are not advertised
  // base_tests runs from build/: configs/ beside its folder is the clone's.
  const std::string dir = shipped_configs_dir();
  ASSERT_FALSE(dir.empty());
  for (const auto& c : list_config_files(dir)) {
    EXPECT_NE(help.find("\n  " + c.name + " "), std::string::npos) << c.name;
    EXPECT_NE(c.description.find_first_not_of(' '), std::string::npos) << c.name;
    EXPECT_NE(c.description, "(no description)") << c.name;
  }
}

TEST(Cli, BooleansTakeNoKeyAndEqualsFalse) {
  EXPECT_FALSE(apply_overrides(TrainConfig{}, parse({"--no-async-save"})).async_save);
  EXPECT_FALSE(apply_overrides(TrainConfig{}, parse({"--async-save=false"})).async_save);
  EXPECT_FALSE(apply_overrides(TrainConfig{}, parse({"--async-save", "false", "--max-steps", "2"})).async_save);
  EXPECT_TRUE(apply_overrides(TrainConfig{}, parse({"--no-async-save", "--async-save"})).async_save);  // last wins
  TrainConfig on;
  on.allow_data_drift = true;
  EXPECT_FALSE(apply_overrides(on, parse({"--no-allow-data-drift"})).allow_data_drift);
  EXPECT_NE(error_of({"--no-epochs"}).find("only a boolean key takes --no-KEY"), std::string::npos);
  EXPECT_NE(error_of({"--no-such-thing"}).find("no-such-thing"), std::string::npos);
}

TEST(Cli, OldFlagsStillWorkWithAWarningNamingTheNewOne) {
  testing::internal::CaptureStderr();
  CliArgs a = parse({"--limit-words", "40", "--timeout-s", "9", "--eval-limit", "7", "--bucket-mb", "4",
                     "--keep-every", "5", "--save-timeout-s", "11", "--deadline-margin-s", "3",
                     "--deadline-refresh-s", "2"});
  const std::string err = testing::internal::GetCapturedStderr();
  TrainConfig c = apply_overrides(TrainConfig{}, a);
  EXPECT_EQ(c.limit_words, 40);
  EXPECT_DOUBLE_EQ(c.timeout_s, 9);
  EXPECT_EQ(c.eval_limit, 7);
  EXPECT_EQ(c.bucket_mb, 4);
  EXPECT_EQ(c.keep_every, 5);
  EXPECT_DOUBLE_EQ(c.save_timeout_s, 11);
  EXPECT_DOUBLE_EQ(c.deadline_margin_s, 3);
  EXPECT_DOUBLE_EQ(c.deadline_refresh_s, 2);
  EXPECT_TRUE(a.overrides_field("max_train_words"));  // overrides carry the new key
  EXPECT_NE(err.find("trainer: warning: command line: --limit-words is now --max-train-words (the old name still "
                     "works in this release)\n"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("--bucket-mb is now --bucket-mib"), std::string::npos) << err;
  EXPECT_NE(err.find("--timeout-s is now --timeout-seconds"), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 8) << err;  // one line each
  // The new names and the flags the acceptance checks use say nothing.
  testing::internal::CaptureStderr();
  c = apply_overrides(TrainConfig{}, parse({"--config", "c.json", "--run-dir", "r", "--max-steps", "3", "--resume",
                                            "never", "--epochs", "2", "--save-every-minutes", "0.5",
                                            "--save-every-steps", "4", "--async-save", "false", "--keep-last", "2",
                                            "--batch-size", "8", "--cpu-kernels", "auto", "--device", "cpu",
                                            "--max-train-words", "9"}));
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(c.resume_from, "never");
  EXPECT_FALSE(c.async_save);
}

TEST(HelpText, GroupsWrapBesideTheirFlags) {
  HelpPage page{"tool X", "Does a thing.", {{"Options", {{"--a N", std::string(150, 'x') + " tail words here"},
                                                         {"--a-very-long-flag-name-indeed VALUE", "short"}}}},
                "Exit codes: 0."};
  const std::string text = format_help(page);
  EXPECT_EQ(text.rfind("usage: tool X\nDoes a thing.\n\nOptions:\n  --a N", 0), 0u) << text;
  EXPECT_NE(text.find("\n  --a-very-long-flag-name-indeed VALUE\n" + std::string(34, ' ') + "short\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("\n\nExit codes: 0.\n"), std::string::npos);
  for (size_t start = 0, end; start < text.size(); start = end + 1) {
    end = text.find('\n', start);
    const std::string line = text.substr(start, end - start);
    if (line.find(std::string(150, 'x')) == std::string::npos) EXPECT_LE(line.size(), 100u) << line;
  }
}

TEST(Cli, HelpFitsInOneHundredColumns) {
  const std::string help = cli_help_text();
  for (size_t start = 0, end; start < help.size(); start = end + 1) {
    end = help.find('\n', start);
    EXPECT_LE(end - start, 100u) << help.substr(start, end - start);
  }
}
