#include "resumable/checkpoint_manager.h"
#include "resumable/checkpoint_state.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

using namespace resumable;

namespace {

StateDict state_at(int64_t step) {
  StateDict d = new_state_dict();
  d.insert("format_version", kCheckpointFormatVersion);
  d.insert("step", step);
  d.insert("w", torch::full({8}, static_cast<double>(step)));
  return d;
}

std::string fresh_dir(const std::string& name) {
  std::string d = ::testing::TempDir() + "ckman_" + std::to_string(::getpid()) + "_" + name;
  std::string cmd = "rm -rf '" + d + "'";
  if (std::system(cmd.c_str()) != 0) return d;
  return d;
}

int64_t step_in(const std::string& path) { return StateReader(read_checkpoint(path).root, path)["step"].to_int(); }
bool exists(const std::string& p) { return ::access(p.c_str(), F_OK) == 0; }

}  // namespace

TEST(CheckpointManager, SaveWritesLastSnapshotAndBest) {
  CheckpointManager m(fresh_dir("save") + "/checkpoints", {3, 0});
  m.prepare();
  SaveReport r = m.save(state_at(10), 10, /*is_best=*/true);
  EXPECT_EQ(r.paths.front(), m.last_path());
  EXPECT_EQ(step_in(m.last_path()), 10);
  EXPECT_EQ(step_in(m.best_path()), 10);
  EXPECT_EQ(step_in(m.step_path(10)), 10);
  m.save(state_at(20), 20, false);
  EXPECT_EQ(step_in(m.last_path()), 20);
  EXPECT_EQ(step_in(m.best_path()), 10);  // best stays
  EXPECT_EQ(m.step_path(1234), m.dir() + "/step-00001234.pt");
}

TEST(CheckpointManager, RetentionKeepsLastNAndMultiplesButNeverBestOrLast) {
  CheckpointManager m(fresh_dir("keep") + "/checkpoints", {2, 30});
  m.prepare();
  for (int64_t step = 10; step <= 100; step += 10) {
    m.save(state_at(step), step, step == 20);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // distinct write times
  }
  std::vector<int64_t> kept;
  for (const auto& s : m.snapshots()) kept.push_back(s.first);
  EXPECT_EQ(kept, (std::vector<int64_t>{100, 90, 60, 30}));
  EXPECT_EQ(step_in(m.best_path()), 20);  // its snapshot is gone, best.pt is not
  EXPECT_EQ(step_in(m.last_path()), 100);
}

TEST(CheckpointManager, KeepLastZeroStillKeepsTheNewest) {
  CheckpointManager m(fresh_dir("zero") + "/checkpoints", {0, 0});
  m.prepare();
  m.save(state_at(1), 1, false);
  m.save(state_at(2), 2, false);
  ASSERT_EQ(m.snapshots().size(), 1u);
  EXPECT_EQ(m.snapshots()[0].first, 2);
}

TEST(CheckpointManager, FallsBackToTheNewestGoodCheckpoint) {
  CheckpointManager m(fresh_dir("fallback") + "/checkpoints", {5, 0});
  m.prepare();
  for (int64_t step : {1, 2, 3}) {
    m.save(state_at(step), step, step == 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  // Damage last.pt (a different inode from step-3 after this rewrite) and the newest snapshot.
  ::unlink(m.last_path().c_str());
  std::ofstream(m.last_path()) << "garbage";
  ::unlink(m.step_path(3).c_str());
  std::ofstream(m.step_path(3)) << "PK\x03\x04 more garbage";
  std::vector<std::string> skipped;
  auto good = m.load_newest_good(skipped);
  ASSERT_TRUE(good.has_value());
  EXPECT_EQ(good->path, m.step_path(2));
  EXPECT_EQ(skipped.size(), 2u);
  // A check that refuses a readable file moves the search on as well.
  skipped.clear();
  good = m.load_newest_good(skipped, [&](const LoadedCheckpoint& ck) {
    if (ck.path == m.step_path(2)) throw CheckpointError(ck.path + ": field 'x': missing");
  });
  ASSERT_TRUE(good.has_value());
  EXPECT_EQ(good->path, m.step_path(1));
}

TEST(CheckpointManager, NothingGoodMeansNoCheckpoint) {
  CheckpointManager m(fresh_dir("none") + "/checkpoints", {5, 0});
  m.prepare();
  EXPECT_FALSE(m.has_checkpoints());
  std::ofstream(m.last_path()) << "x";
  EXPECT_TRUE(m.has_checkpoints());
  std::vector<std::string> skipped;
  EXPECT_FALSE(m.load_newest_good(skipped).has_value());
  EXPECT_EQ(skipped.size(), 1u);
}

TEST(CheckpointManager, PrepareRemovesTemporariesOfAKilledWriter) {
  CheckpointManager m(fresh_dir("temps") + "/checkpoints", {5, 0});
  m.prepare();
  std::ofstream(m.dir() + "/.last.pt.tmp.999.0") << "half a checkpoint";
  m.prepare();
  EXPECT_FALSE(exists(m.dir() + "/.last.pt.tmp.999.0"));
}

TEST(CheckpointManager, SetAsideMovesTheDirectory) {
  auto root = fresh_dir("aside");
  CheckpointManager m(root + "/checkpoints", {5, 0});
  m.prepare();
  m.save(state_at(1), 1, false);
  std::string moved = m.set_aside();
  EXPECT_FALSE(exists(m.dir()));
  EXPECT_EQ(step_in(moved + "/last.pt"), 1);
}
