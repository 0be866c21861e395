#include "resumable/checkpoint/checkpoint_manager.h"
#include "resumable/checkpoint/checkpoint_state.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fcntl.h>
#include <fstream>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include "../scratch_dir.h"

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
  // Empty, even when a test before it in the same process used the name.
  std::string d = scratch_path("ckman_" + name);
  remove_tree(d);
  return d;
}

CheckpointMeta meta_at(int64_t step, int64_t segment = 1) {
  CheckpointMeta m;
  m.step = step;
  m.segment = segment;
  return m;
}

int64_t step_in(const std::string& path) { return StateReader(read_checkpoint(path).root, path)["step"].to_int(); }
bool exists(const std::string& p) { return ::access(p.c_str(), F_OK) == 0; }

std::vector<int64_t> snapshot_steps(const CheckpointManager& m) {
  std::vector<int64_t> steps;
  for (const auto& f : m.snapshots()) steps.push_back(f.step());
  return steps;
}

// Sets a file's modification time (a clock stepped back, a copy without -p).
void set_mtime(const std::string& path, time_t t) {
  struct timespec times[2] = {{t, 0}, {t, 0}};
  ::utimensat(AT_FDCWD, path.c_str(), times, 0);
}

}  // namespace

TEST(CheckpointManager, SaveWritesLastSnapshotAndBest) {
  CheckpointManager m(fresh_dir("save") + "/checkpoints", {3, 0});
  m.prepare();
  SaveReport r = m.save(state_at(10), meta_at(10), /*is_best=*/true);
  EXPECT_EQ(r.paths.front(), m.last_path());
  EXPECT_EQ(step_in(m.last_path()), 10);
  EXPECT_EQ(step_in(m.best_path()), 10);
  EXPECT_EQ(step_in(m.step_path(10)), 10);
  m.save(state_at(20), meta_at(20), false);
  EXPECT_EQ(step_in(m.last_path()), 20);
  EXPECT_EQ(step_in(m.best_path()), 10);  // best stays
  EXPECT_EQ(m.step_path(1234), m.dir() + "/step-00001234.pt");
}

TEST(CheckpointManager, RetentionKeepsLastNAndMultiplesButNeverBestOrLast) {
  CheckpointManager m(fresh_dir("keep") + "/checkpoints", {2, 30});
  m.prepare();
  for (int64_t step = 10; step <= 100; step += 10) {
    m.save(state_at(step), meta_at(step), step == 20);
  }
  EXPECT_EQ(snapshot_steps(m), (std::vector<int64_t>{100, 90, 60, 30}));
  EXPECT_EQ(step_in(m.best_path()), 20);  // its snapshot is gone, best.pt is not
  EXPECT_EQ(step_in(m.last_path()), 100);
}

TEST(CheckpointManager, KeepLastZeroStillKeepsTheNewest) {
  CheckpointManager m(fresh_dir("zero") + "/checkpoints", {0, 0});
  m.prepare();
  m.save(state_at(1), meta_at(1), false);
  m.save(state_at(2), meta_at(2), false);
  EXPECT_EQ(snapshot_steps(m), (std::vector<int64_t>{2}));
}

TEST(CheckpointManager, FallsBackToTheNewestGoodCheckpoint) {
  CheckpointManager m(fresh_dir("fallback") + "/checkpoints", {5, 0});
  m.prepare();
  for (int64_t step : {1, 2, 3}) m.save(state_at(step), meta_at(step), step == 1);
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
  m.save(state_at(1), meta_at(1), false);
  std::string moved = m.set_aside();
  EXPECT_FALSE(exists(m.dir()));
  EXPECT_EQ(step_in(moved + "/last.pt"), 1);
}

TEST(CheckpointManager, OrdersByWhatTheFilesSayNotByTheirClock) {
  CheckpointManager m(fresh_dir("clock") + "/checkpoints", {2, 0});
  m.prepare();
  for (int64_t step : {10, 20, 30}) m.save(state_at(step), meta_at(step), false);
  // The clock was stepped back: the newest file has the oldest time.
  set_mtime(m.step_path(30), 1000);
  set_mtime(m.step_path(20), 3000);
  EXPECT_EQ(snapshot_steps(m), (std::vector<int64_t>{30, 20}));  // 10 was pruned, not 30
  // A rollback (a resume of step 20) is a later launch: its step 25 is newer than the abandoned 30.
  m.save(state_at(25), meta_at(25, /*segment=*/2), false);
  EXPECT_EQ(snapshot_steps(m), (std::vector<int64_t>{25, 30}));
  EXPECT_EQ(m.highest_segment(), 2);
  std::vector<std::string> skipped;
  ::unlink(m.last_path().c_str());
  auto good = m.load_newest_good(skipped);
  ASSERT_TRUE(good.has_value());
  EXPECT_EQ(good->path, m.step_path(25));
}

TEST(CheckpointManager, FilesOfOlderTrainersSortBeforeEveryLaunchAndByStep) {
  CheckpointManager m(fresh_dir("old") + "/checkpoints", {5, 0});
  m.prepare();
  write_checkpoint(state_at(50), {m.step_path(50)});  // no meta record: an older trainer's file
  write_checkpoint(state_at(40), {m.step_path(40)});
  m.save(state_at(5), meta_at(5), false);
  EXPECT_EQ(snapshot_steps(m), (std::vector<int64_t>{5, 50, 40}));
}

TEST(CheckpointManager, PruningNeverDeletesAFileItCannotRead) {
  CheckpointManager m(fresh_dir("unknown") + "/checkpoints", {1, 0});
  m.prepare();
  std::ofstream(m.step_path(7)) << "PK\x03\x04 not a checkpoint";
  m.save(state_at(8), meta_at(8), false);
  m.save(state_at(9), meta_at(9), false);
  EXPECT_TRUE(exists(m.step_path(7)));
  EXPECT_FALSE(exists(m.step_path(8)));
}

TEST(CheckpointManager, OnlyDamageMakesTheSearchFallBack) {
  CheckpointManager m(fresh_dir("newer") + "/checkpoints", {5, 0});
  m.prepare();
  m.save(state_at(1), meta_at(1), false);
  StateDict future = state_at(2);
  future.insert_or_assign("format_version", kCheckpointFormatVersion + 1);
  m.save(future, meta_at(2), false);
  std::vector<std::string> skipped;
  try {
    m.load_newest_good(skipped);
    FAIL() << "a newer format must stop the search, not be skipped";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.kind(), CheckpointError::Kind::kIncompatible);
    EXPECT_NE(std::string(e.what()).find("upgrade the trainer"), std::string::npos);
  }
  EXPECT_TRUE(skipped.empty());
}

TEST(CheckpointManager, AnEarlierBestIsWrittenAndLinkedAsBest) {
  CheckpointManager m(fresh_dir("pending") + "/checkpoints", {5, 0});
  m.prepare();
  m.save(state_at(10), meta_at(10), true);
  PendingBest earlier{state_at(20), meta_at(20)};  // its own save failed
  SaveReport r = m.save(state_at(30), meta_at(30), false, &earlier);
  EXPECT_TRUE(r.best_published);
  EXPECT_EQ(step_in(m.best_path()), 20);
  EXPECT_EQ(step_in(m.step_path(20)), 20);
  EXPECT_EQ(step_in(m.last_path()), 30);
  // A newer best supersedes it.
  r = m.save(state_at(40), meta_at(40), true, &earlier);
  EXPECT_EQ(step_in(m.best_path()), 40);
}

TEST(CheckpointManager, AFailureAfterLastIsPublishedIsReportedNotThrown) {
  CheckpointManager m(fresh_dir("partial") + "/checkpoints", {5, 0});
  m.prepare();
  m.save(state_at(1), meta_at(1), false);
  ASSERT_EQ(::mkdir((m.dir() + "/best.pt").c_str(), 0755), 0);  // best.pt cannot be replaced
  std::ofstream(m.dir() + "/best.pt/x") << "x";
  SaveReport r = m.save(state_at(2), meta_at(2), true);
  EXPECT_EQ(step_in(m.last_path()), 2);
  EXPECT_FALSE(r.best_published);
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_NE(r.problems[0].find("best.pt"), std::string::npos);
  EXPECT_EQ(step_in(m.step_path(2)), 2);
}

TEST(CheckpointManager, ANumberTooLongForAStepIsNotASnapshot) {
  CheckpointManager m(fresh_dir("longname") + "/checkpoints", {1, 0});
  m.prepare();
  std::ofstream(m.dir() + "/step-99999999999999999999.pt") << "x";
  m.save(state_at(1), meta_at(1), false);
  m.save(state_at(2), meta_at(2), false);
  EXPECT_EQ(snapshot_steps(m), (std::vector<int64_t>{2}));
  EXPECT_TRUE(exists(m.dir() + "/step-99999999999999999999.pt"));
}
