#include "resumable/checkpoint/run_directory_lock.h"
#include "resumable/util/errors.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <sys/file.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include "../scratch_dir.h"

using namespace resumable;

namespace {

std::string fresh_dir(const std::string& name) {
  return scratch_path("runlock_" + name);
}
std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
const RunDirectoryLockOptions kCleanTool{"ckpt clean", {}};
RunDirectoryLockOptions job_waiting_for_tools(std::chrono::milliseconds wait) { return {"", wait}; }

}  // namespace

TEST(RunDirectoryLock, ASecondHolderIsRefusedWithTheFirstNamed) {
  auto dir = fresh_dir("busy");
  RunDirectoryLock first(dir);
  EXPECT_TRUE(first.taken_over_from().empty());
  try {
    RunDirectoryLock second(dir);
    FAIL() << "a second lock on the same run directory was granted";
  } catch (const RunDirectoryBusy& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(dir + " is in use by another job"), std::string::npos) << what;
    EXPECT_NE(what.find("pid " + std::to_string(::getpid())), std::string::npos) << what;
    EXPECT_NE(what.find(" since "), std::string::npos) << what;
  }
}

TEST(RunDirectoryLock, ReleasedLocksAreFreeAndLeaveNoHolder) {
  auto dir = fresh_dir("release");
  {
    RunDirectoryLock first(dir);
    EXPECT_NE(read(dir + "/.lock").find("\"pid\""), std::string::npos);
  }
  EXPECT_EQ(read(dir + "/.lock"), "");
  RunDirectoryLock again(dir);
  EXPECT_TRUE(again.taken_over_from().empty());
}

TEST(RunDirectoryLock, ALockLeftByAProcessThatDiedIsTakenOver) {
  auto dir = fresh_dir("stale");
  { RunDirectoryLock first(dir); }
  // What a killed holder leaves: its record, and no lock (the kernel dropped it with the process).
  std::ofstream(dir + "/.lock") << R"({"host":"node7","pid":4242,"since":"2026-01-01 00:00:00"})";
  RunDirectoryLock taker(dir);
  EXPECT_EQ(taker.taken_over_from(), "pid 4242 on host node7 since 2026-01-01 00:00:00");
}

TEST(RunDirectoryLock, AnUncreatableRunDirectoryIsABadFlag) {
  std::ofstream(fresh_dir("file")) << "x";
  EXPECT_THROW(RunDirectoryLock(fresh_dir("file") + "/sub"), ConfigError);
}

TEST(RunDirectoryLock, AToolNamesItselfInTheRecord) {
  auto dir = fresh_dir("tool_record");
  RunDirectoryLock tool(dir, kCleanTool);
  EXPECT_NE(read(dir + "/.lock").find("\"tool\":\"ckpt clean\""), std::string::npos) << read(dir + "/.lock");
}

TEST(RunDirectoryLock, AJobWaitsForAToolAndTakesTheLockWhenItLetsGo) {
  auto dir = fresh_dir("tool_wait");
  auto tool = std::make_unique<RunDirectoryLock>(dir, kCleanTool);
  std::thread finisher([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    tool.reset();
  });
  const auto start = std::chrono::steady_clock::now();
  RunDirectoryLock job(dir, job_waiting_for_tools(std::chrono::seconds(20)));
  const double waited = seconds_since(start);
  finisher.join();
  EXPECT_GE(waited, 0.6);
  EXPECT_LT(waited, 5.0);
  EXPECT_TRUE(job.taken_over_from().empty()) << "the tool ended in order: " << job.taken_over_from();
  EXPECT_EQ(read(dir + "/.lock").find("\"tool\""), std::string::npos) << read(dir + "/.lock");
}

TEST(RunDirectoryLock, AToolHoldingItPastTheWaitLeavesTheDirectoryBusy) {
  auto dir = fresh_dir("tool_too_long");
  RunDirectoryLock tool(dir, kCleanTool);
  const auto start = std::chrono::steady_clock::now();
  try {
    RunDirectoryLock job(dir, job_waiting_for_tools(std::chrono::milliseconds(500)));
    FAIL() << "the lock was granted while the tool held it";
  } catch (const RunDirectoryBusy& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(dir + " is in use by `trainer ckpt clean`, pid " + std::to_string(::getpid())),
              std::string::npos) << what;
    EXPECT_NE(what.find("still after"), std::string::npos) << what;
  }
  const double waited = seconds_since(start);
  EXPECT_GE(waited, 0.5);
  EXPECT_LT(waited, 3.0);
}

TEST(RunDirectoryLock, AJobIsNotWaitedFor) {
  auto dir = fresh_dir("job_no_wait");
  RunDirectoryLock first(dir);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(RunDirectoryLock(dir, job_waiting_for_tools(std::chrono::seconds(20))), RunDirectoryBusy);
  EXPECT_LT(seconds_since(start), 1.0);
}

TEST(RunDirectoryLock, AHolderThatNamesNobodyCountsAsAJob) {
  auto dir = fresh_dir("unnamed");
  { RunDirectoryLock first(dir); }
  // Another program's flock on the file, or a holder that never wrote its record.
  int fd = ::open((dir + "/.lock").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  const auto start = std::chrono::steady_clock::now();
  try {
    RunDirectoryLock job(dir, job_waiting_for_tools(std::chrono::seconds(20)));
    FAIL() << "the lock was granted while another holder had it";
  } catch (const RunDirectoryBusy& e) {
    EXPECT_NE(std::string(e.what()).find("holder unknown"), std::string::npos) << e.what();
  }
  // A holder names itself right after it takes the lock: a moment's grace, not the tools' wait.
  EXPECT_LT(seconds_since(start), 3.0);
  ::close(fd);
}

TEST(RunDirectoryLock, AProbeSeesTheHolderAndChangesNothing) {
  auto dir = fresh_dir("probe");
  EXPECT_FALSE(RunDirectoryLock::probe(dir).exists);
  EXPECT_NE(::access(dir.c_str(), F_OK), 0) << "the probe created the run directory";
  const std::string lock = dir + "/.lock";
  {
    RunDirectoryLock holder(dir);
    struct stat before {};
    ASSERT_EQ(::stat(lock.c_str(), &before), 0);
    const std::string record = read(lock);
    LockProbe p = RunDirectoryLock::probe(dir);
    EXPECT_TRUE(p.exists && p.held);
    EXPECT_EQ(p.holder.pid, ::getpid());
    EXPECT_NE(p.refusal.find(dir + " is in use by another job (pid " + std::to_string(::getpid())), std::string::npos)
        << p.refusal;
    struct stat after {};
    ASSERT_EQ(::stat(lock.c_str(), &after), 0);
    EXPECT_EQ(read(lock), record);
    EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
    EXPECT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  }
  LockProbe free = RunDirectoryLock::probe(dir);
  EXPECT_TRUE(free.exists);
  EXPECT_FALSE(free.held);
  EXPECT_TRUE(free.refusal.empty() && free.holder.host.empty());
  // A record left by a killed holder is named, and the probe leaves the lock to be taken over.
  std::ofstream(lock) << R"({"host":"node7","pid":4242,"since":"2026-01-01 00:00:00"})";
  LockProbe stale = RunDirectoryLock::probe(dir);
  EXPECT_FALSE(stale.held);
  EXPECT_EQ(stale.holder.describe(), "pid 4242 on host node7 since 2026-01-01 00:00:00");
  RunDirectoryLock taker(dir);
  EXPECT_EQ(taker.taken_over_from(), "pid 4242 on host node7 since 2026-01-01 00:00:00");
}
