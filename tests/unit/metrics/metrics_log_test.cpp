#include "resumable/metrics/metrics_log.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

using namespace resumable;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir() {
  char tmpl[] = "/tmp/metrics_test.XXXXXX";
  return fs::path(mkdtemp(tmpl));
}

std::vector<nlohmann::json> rows_of(const fs::path& p) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(p);
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

uint32_t unmask(uint32_t m) {
  uint32_t rot = m - 0xa282ead8u;
  return (rot >> 17) | (rot << 15);
}

}  // namespace

TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(crc32c("123456789", 9), 0xe3069283u);  // the standard check value of CRC-32C
  EXPECT_EQ(crc32c("", 0), 0u);
}

TEST(EventFileWriter, RecordsAreFramedWithMaskedCrcs) {
  fs::path dir = temp_dir();
  std::string path;
  {
    EventFileWriter w(dir.string());
    w.scalar("train/loss", 7, 1.5);
    w.flush();
    path = w.path();
  }
  EXPECT_NE(fs::path(path).filename().string().find("events.out.tfevents."), std::string::npos);
  std::string data = read_all(path);
  size_t pos = 0, records = 0;
  while (pos < data.size()) {
    uint64_t len;
    uint32_t len_crc, data_crc;
    ASSERT_LE(pos + 12, data.size());
    std::memcpy(&len, data.data() + pos, 8);
    std::memcpy(&len_crc, data.data() + pos + 8, 4);
    EXPECT_EQ(unmask(len_crc), crc32c(data.data() + pos, 8));
    ASSERT_LE(pos + 12 + len + 4, data.size());
    std::memcpy(&data_crc, data.data() + pos + 12 + len, 4);
    EXPECT_EQ(unmask(data_crc), crc32c(data.data() + pos + 12, len));
    if (records == 1) {
      EXPECT_NE(data.substr(pos + 12, len).find("train/loss"), std::string::npos);
    }
    pos += 12 + len + 4;
    ++records;
  }
  EXPECT_EQ(records, 2u);  // the file version, then the scalar
  fs::remove_all(dir);
}

TEST(MetricsLog, RowsPerStepAndEvaluationAndTheResumeMark) {
  fs::path dir = temp_dir();
  {
    MetricsLog log(dir.string(), 0, "");
    log.step(1, 0, 2.5, 0.001, 100);
    log.evaluation(1, 1, {1.25, 0.5, 0.25, 0.75, true});
  }
  auto rows = rows_of(dir / "metrics.jsonl");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["step"], 1);
  EXPECT_EQ(rows[0]["loss"], 2.5);
  EXPECT_EQ(rows[0]["lr"], 0.001);
  EXPECT_FALSE(rows[1].contains("loss"));  // rows with "loss" are exactly the training steps
  EXPECT_EQ(rows[1]["val_wer"], 0.5);
  EXPECT_EQ(rows[1]["new_best"], true);
  {
    MetricsLog log(dir.string(), 1, "/x/last.pt");
  }
  rows = rows_of(dir / "metrics.jsonl");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[2]["event"], "resume");
  EXPECT_EQ(rows[2]["from"], "/x/last.pt");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir / "tb"), fs::directory_iterator{}), 2);
  fs::remove_all(dir);
}

TEST(MetricsLog, ResumingCutsTheRowsBeyondTheCheckpoint) {
  fs::path dir = temp_dir();
  {
    MetricsLog log(dir.string(), 0, "");
    for (int s = 1; s <= 9; ++s) log.step(s, 0, 1.0 / s, 0.1, 10);
    log.evaluation(5, 1, {});
  }
  std::ofstream(dir / "metrics.jsonl", std::ios::app) << "{\"step\": 10, \"lo";  // a torn last line
  {
    MetricsLog log(dir.string(), 5, "/x/step-5.pt");
    log.step(6, 0, 0.5, 0.1, 10);
  }
  std::vector<int> steps;
  for (const auto& r : rows_of(dir / "metrics.jsonl"))
    if (r.contains("loss")) steps.push_back(r["step"]);
  EXPECT_EQ(steps, (std::vector<int>{1, 2, 3, 4, 5, 6}));
  auto rows = rows_of(dir / "metrics.jsonl");
  EXPECT_EQ(rows[5]["val_loss"], 0.0);  // the evaluation at the checkpoint's own step stays
  EXPECT_EQ(rows[6]["event"], "resume");
  EXPECT_EQ(cut_metrics_after((dir / "metrics.jsonl").string(), 6), 0u);
  EXPECT_EQ(cut_metrics_after((dir / "none.jsonl").string(), 0), 0u);
  fs::remove_all(dir);
}

TEST(MetricsLog, AStartFromScratchDropsTheStepsOfAnAttemptThatNeverSaved) {
  fs::path dir = temp_dir();
  {
    MetricsLog log(dir.string(), 0, "");
    log.step(1, 0, 2.0, 0.1, 10);  // killed before its first save
  }
  {
    MetricsLog log(dir.string(), 0, "");
    log.step(1, 0, 3.0, 0.1, 10);
  }
  auto rows = rows_of(dir / "metrics.jsonl");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["loss"], 3.0);
  fs::remove_all(dir);
}

TEST(MetricsLog, ARunSetAsideKeepsItsLogsBeside) {
  fs::path dir = temp_dir();
  {
    MetricsLog log(dir.string(), 0, "");
    log.step(1, 0, 2.0, 0.1, 10);
    log.step(2, 0, 1.0, 0.1, 10);
  }
  {
    MetricsLog log(dir.string(), 0, "", /*earlier_run_set_aside=*/true);  // --resume never --force
    log.step(1, 0, 3.0, 0.1, 10);
  }
  std::vector<fs::path> jsonl_aside, tb_aside;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name.rfind("metrics.jsonl.old-", 0) == 0) jsonl_aside.push_back(e.path());
    if (name.rfind("tb.old-", 0) == 0) tb_aside.push_back(e.path());
  }
  ASSERT_EQ(jsonl_aside.size(), 1u);
  ASSERT_EQ(tb_aside.size(), 1u);
  EXPECT_EQ(rows_of(jsonl_aside[0]).size(), 2u);
  EXPECT_EQ(std::distance(fs::directory_iterator(tb_aside[0]), fs::directory_iterator{}), 1);
  auto rows = rows_of(dir / "metrics.jsonl");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["loss"], 3.0);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir / "tb"), fs::directory_iterator{}), 1);
  fs::remove_all(dir);
}
