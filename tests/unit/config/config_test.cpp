#include "resumable/config/config.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <nlohmann/json.hpp>

#include "../scratch_dir.h"

using namespace resumable;
using json = nlohmann::json;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

std::string write_temp(const std::string& name, const std::string& text) {
  std::string path = scratch_path(name);
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST(Config, DefaultsAreValidAndRoundTripThroughJson) {
  TrainConfig c;
  EXPECT_NO_THROW(validate(c, "defaults"));
  TrainConfig back = config_from_json(config_to_json(c), "round trip");
  EXPECT_TRUE(diff_configs(c, back).empty());
}

TEST(Config, EveryFieldHasAFlagAndHelp) {
  for (const auto& f : config_fields()) {
    EXPECT_FALSE(f.help.empty()) << f.name;
    EXPECT_EQ(f.flag.find('_'), std::string::npos) << f.name;
  }
}

TEST(Config, FileValuesOverrideDefaultsAndNameComesFromTheFile) {
  auto path = write_temp("small.json", R"({"d_model": 32, "heads": 2, "lr": 0.5, "force": true, "device": "cpu"})");
  TrainConfig c = load_config_file(path);
  EXPECT_EQ(c.d_model, 32);
  EXPECT_EQ(c.heads, 2);
  EXPECT_DOUBLE_EQ(c.lr, 0.5);
  EXPECT_TRUE(c.force);
  EXPECT_EQ(c.name, "small");
  EXPECT_EQ(c.resolved_run_dir(), "runs/small");
}

TEST(Config, UnknownKeyNamesKeyAndFile) {
  auto path = write_temp("unknown.json", R"({"no_such_key": 1})");
  std::string e = error_of([&] { load_config_file(path); });
  EXPECT_NE(e.find("unknown key 'no_such_key'"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown.json"), std::string::npos) << e;
}

TEST(Config, WrongTypesAreRefusedWithExpectation) {
  EXPECT_NE(error_of([] { config_from_json(json{{"d_model", "big"}}, "x.json"); }).find("field 'd_model': expected an integer, got a string"),
            std::string::npos);
  EXPECT_NE(error_of([] { config_from_json(json{{"d_model", 1.5}}, "x.json"); }).find("expected an integer"), std::string::npos);
  EXPECT_NE(error_of([] { config_from_json(json{{"lr", true}}, "x.json"); }).find("field 'lr': expected a number"), std::string::npos);
  EXPECT_NE(error_of([] { config_from_json(json{{"force", 1}}, "x.json"); }).find("expected a boolean"), std::string::npos);
  EXPECT_NE(error_of([] { config_from_json(json{{"device", 3}}, "x.json"); }).find("expected a string"), std::string::npos);
  EXPECT_NE(error_of([] { config_from_json(json::array(), "x.json"); }).find("expected a JSON object"), std::string::npos);
  // 4.0 is an integer written as a float: accepted.
  EXPECT_EQ(config_from_json(json{{"epochs", 4.0}}, "x.json").epochs, 4);
}

TEST(Config, OutOfRangeValuesAreRefused) {
  auto check = [](const char* key, json value, const char* expected) {
    TrainConfig c = config_from_json(json{{key, value}}, "x.json");
    std::string e = error_of([&] { validate(c, "x.json"); });
    EXPECT_NE(e.find(std::string("field '") + key + "'"), std::string::npos) << e;
    EXPECT_NE(e.find(expected), std::string::npos) << e;
  };
  check("dropout", 1.5, "a number in [0, 1)");
  check("epochs", 0, "an integer >= 1");
  check("lr", -1, "a number > 0");
  check("device", "tpu", "one of cpu|cuda|auto");
  check("heads", 3, "a divisor of d_model");
  check("min_lr", 10.0, "<= lr");
}

TEST(Config, InvalidJsonIsOneLineWithFile) {
  auto path = write_temp("broken.json", "{\"d_model\": 12,,}");
  std::string e = error_of([&] { load_config_file(path); });
  EXPECT_NE(e.find("broken.json: not valid JSON"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos);
  EXPECT_NE(error_of([] { load_config_file("/nonexistent/cfg.json"); }).find("cannot open"), std::string::npos);
}

TEST(Config, StringOverridesParseByType) {
  TrainConfig c;
  set_field_from_string(c, "d_model", "96", "cli");
  set_field_from_string(c, "lr", "3e-4", "cli");
  set_field_from_string(c, "force", "true", "cli");
  set_field_from_string(c, "run_dir", "/tmp/x", "cli");
  EXPECT_EQ(c.d_model, 96);
  EXPECT_DOUBLE_EQ(c.lr, 3e-4);
  EXPECT_TRUE(c.force);
  EXPECT_EQ(c.run_dir, "/tmp/x");
  EXPECT_NE(error_of([&] { set_field_from_string(c, "d_model", "12x", "cli"); }).find("--d-model: expected an integer, got '12x'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { set_field_from_string(c, "lr", "fast", "cli"); }).find("expected a number"), std::string::npos);
  EXPECT_NE(error_of([&] { set_field_from_string(c, "force", "maybe", "cli"); }).find("true or false"), std::string::npos);
}

TEST(Config, DiffReportsRoles) {
  TrainConfig a, b;
  b.d_model = a.d_model * 2;
  b.epochs = a.epochs + 1;
  b.lr = a.lr / 2;
  auto d = diff_configs(a, b);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].field, "d_model");
  EXPECT_EQ(d[0].role, FieldRole::kArchitecture);
  EXPECT_EQ(d[1].field, "epochs");
  EXPECT_EQ(d[1].role, FieldRole::kSchedule);
  EXPECT_EQ(d[2].field, "lr");
  EXPECT_EQ(d[2].role, FieldRole::kTuning);
}

TEST(Config, BestModeAutoFollowsMetric) {
  TrainConfig c;
  EXPECT_EQ(c.resolved_best_mode(), "min");
  c.best_metric = "val_token_acc";
  EXPECT_EQ(c.resolved_best_mode(), "max");
  c.best_mode = "min";
  EXPECT_EQ(c.resolved_best_mode(), "min");
}

TEST(Config, NamesFollowOneRule) {
  std::set<std::string> names;
  for (const auto& f : config_fields()) {
    std::string dashed = f.name;
    std::replace(dashed.begin(), dashed.end(), '_', '-');
    EXPECT_EQ(f.flag, dashed) << f.name;  // flag = key with dashes
    EXPECT_TRUE(names.insert(f.name).second) << f.name;
    // A unit is spelled out, last: no _s, _mb or bare _limit.
    for (const char* tail : {"_s", "_mb", "_limit"})
      EXPECT_FALSE(f.name.size() > strlen(tail) && f.name.compare(f.name.size() - strlen(tail), strlen(tail), tail) == 0)
          << f.name;
  }
  for (const auto& f : config_fields())
    for (const auto& old : f.old_names) {
      EXPECT_EQ(names.count(old), 0u) << old << " is both an old and a current key";
      EXPECT_TRUE(names.insert(old).second) << old;
    }
}

TEST(Config, EveryTopicHasFieldsInTableOrder) {
  size_t last = 0;
  std::set<ConfigTopic> seen;
  for (const auto& f : config_fields()) {
    const size_t t = static_cast<size_t>(f.topic);
    EXPECT_GE(t, last) << f.name << ": the table is grouped by topic";
    last = t;
    seen.insert(f.topic);
  }
  EXPECT_EQ(seen.size(), config_topics().size());
  for (const auto& t : config_topics()) EXPECT_EQ(&topic_info(t.topic), &t);
}

TEST(Config, OldKeysInAFileAreReadWithAWarningNamingTheNewOne) {
  auto path = write_temp("old.json", R"({"limit_words": 40, "eval_limit": 7, "resume_from": "never", "timeout_s": 9})");
  testing::internal::CaptureStderr();
  TrainConfig c = load_config_file(path);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(c.limit_words, 40);
  EXPECT_EQ(c.eval_limit, 7);
  EXPECT_EQ(c.resume_from, "never");
  EXPECT_DOUBLE_EQ(c.timeout_s, 9);
  EXPECT_NE(err.find("trainer: warning: " + path +
                     ": key 'limit_words' is now 'max_train_words' (the old name still works in this release)\n"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("key 'resume_from' is now 'resume'"), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 4) << err;
  // Written back, the keys are the new ones.
  json back = config_to_json(c);
  EXPECT_EQ(back.at("max_train_words"), 40);
  EXPECT_EQ(back.at("resume"), "never");
  EXPECT_FALSE(back.contains("limit_words"));
}

TEST(Config, OldKeysOfASavedConfigAreReadQuietly) {
  testing::internal::CaptureStderr();
  TrainConfig c = config_from_json(json{{"limit_words", 40}, {"bucket_mb", 4}, {"keep_every", 6}}, "ck.pt: saved config",
                                   {}, OldKeys::kQuiet);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(c.limit_words, 40);
  EXPECT_EQ(c.bucket_mb, 4);
  EXPECT_EQ(c.keep_every, 6);
}

TEST(Config, AnOldAndANewKeyTogetherAreRefused) {
  std::string e = error_of([] { config_from_json(json{{"limit_words", 4}, {"max_train_words", 5}}, "x.json", {}, OldKeys::kQuiet); });
  EXPECT_NE(e.find("keys 'limit_words' and 'max_train_words' are one setting"), std::string::npos) << e;
  EXPECT_NE(e.find("keep only 'max_train_words'"), std::string::npos) << e;
}

TEST(Config, ADashedKeyIsPointedToItsUnderscoreSpelling) {
  std::string e = error_of([] { config_from_json(json{{"d-model", 64}}, "x.json"); });
  EXPECT_NE(e.find("unknown key 'd-model' (keys spell '_' where flags spell '-': 'd_model')"), std::string::npos) << e;
  e = error_of([] { config_from_json(json{{"limit-words", 64}}, "x.json"); });
  EXPECT_NE(e.find("'max_train_words'"), std::string::npos) << e;
}

TEST(Config, ADescriptionIsAcceptedAndIgnored) {
  auto path = write_temp("described.json", R"({"description": "what it is for", "epochs": 5})");
  TrainConfig c = load_config_file(path);
  EXPECT_EQ(c.epochs, 5);
  EXPECT_FALSE(config_to_json(c).contains("description"));
  EXPECT_NE(error_of([] { config_from_json(json{{"description", 3}}, "x.json"); }).find("field 'description': expected a string"),
            std::string::npos);
  // The listing reads it, and says when there is none.
  std::string dir = scratch_path("listing");
  ::mkdir(dir.c_str(), 0755);
  std::ofstream(dir + "/b.json") << R"({"description": "the b recipe"})";
  std::ofstream(dir + "/a.json") << R"({"epochs": 1})";
  std::ofstream(dir + "/c.json") << "{broken";
  std::ofstream(dir + "/notes.txt") << "not a config";
  auto list = list_config_files(dir);
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].name, "a");
  EXPECT_EQ(list[0].description, "(no description)");
  EXPECT_EQ(list[1].description, "the b recipe");
  EXPECT_EQ(list[2].description, "(not valid JSON)");
}

TEST(Config, TheShippedConfigsLoadWithoutWarnings) {
  const std::string dir = shipped_configs_dir();
  ASSERT_FALSE(dir.empty());
  auto list = list_config_files(dir);
  EXPECT_GE(list.size(), 4u);
  for (const auto& c : list) {
    testing::internal::CaptureStderr();
    TrainConfig cfg = load_config_file(c.path);
    EXPECT_EQ(testing::internal::GetCapturedStderr(), "") << c.name;
    EXPECT_NO_THROW(validate(cfg, c.path));
    EXPECT_EQ(cfg.name, c.name);
  }
}
