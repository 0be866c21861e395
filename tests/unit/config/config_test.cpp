#include "resumable/config/config.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
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
