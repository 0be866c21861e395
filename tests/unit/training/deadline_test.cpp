#include "resumable/training/deadline.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include "../scratch_dir.h"

using namespace resumable;
using namespace std::chrono_literals;

namespace {
double seconds_between(WallClock::time_point a, WallClock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
}  // namespace

TEST(Deadline, SecondsCountFromTheStart) {
  auto start = WallClock::now();
  auto d = parse_deadline("3600", start);
  ASSERT_TRUE(d);
  EXPECT_NEAR(seconds_between(start, *d), 3600, 1e-3);
  ASSERT_TRUE(parse_deadline("90.5", start));
  EXPECT_NEAR(seconds_between(start, *parse_deadline("90.5", start)), 90.5, 1e-3);
}

TEST(Deadline, IsoTimesAreLocalUnlessZ) {
  auto start = WallClock::now();
  auto local = parse_deadline("2026-11-26T21:30:15", start);
  ASSERT_TRUE(local);
  EXPECT_EQ(iso_local_time(*local), "2026-11-26T21:30:15");
  ASSERT_TRUE(parse_deadline("2026-11-26T21:30", start));
  EXPECT_EQ(iso_local_time(*parse_deadline("2026-11-26T21:30", start)), "2026-11-26T21:30:00");
  auto utc = parse_deadline("1970-01-02T00:00:00Z", start);
  ASSERT_TRUE(utc);
  EXPECT_EQ(WallClock::to_time_t(*utc), 86400);
}

TEST(Deadline, NonsenseIsRefused) {
  auto start = WallClock::now();
  for (const char* bad : {"", "soon", "-5", "0", "12:30", "2026-13-01T00:00", "2026-11-26T21:30:00+01", "1e99"})
    EXPECT_FALSE(parse_deadline(bad, start)) << bad;
  EXPECT_THROW(Deadline(Deadline::Options{"tomorrow", "", 60, start}), std::invalid_argument);
}

TEST(Deadline, SlurmEndTimes) {
  ASSERT_TRUE(parse_slurm_end_time("2026-11-26T21:30:00\n"));
  EXPECT_EQ(iso_local_time(*parse_slurm_end_time("2026-11-26T21:30:00\n")), "2026-11-26T21:30:00");
  for (const char* none : {"Unknown\n", "N/A", "NONE", "", "INVALID"}) EXPECT_FALSE(parse_slurm_end_time(none)) << none;
}

TEST(Deadline, DueWhenTwoSavesAStepAndTheMarginNoLongerFit) {
  EXPECT_FALSE(deadline_due(100, 10, 5, 60));  // 100 >= 2*10 + 5 + 60
  EXPECT_TRUE(deadline_due(84, 10, 5, 60));
  EXPECT_TRUE(deadline_due(-3, 0, 0, 0));  // already past
}

TEST(Deadline, TheMarginIsAtMostAQuarterOfTheRunsTime) {
  EXPECT_EQ(effective_margin(60, 3600), 60);
  EXPECT_EQ(effective_margin(60, 60), 15);  // a 1-minute job still trains 45 s
  EXPECT_EQ(effective_margin(60, -10), 0);
}

TEST(Deadline, NoneWatchesNothingNotEvenSlurm) {
  Deadline d(Deadline::Options{"none", "4242", 60, WallClock::now()});
  EXPECT_FALSE(d.watched());
  EXPECT_FALSE(d.end());
}

TEST(Deadline, MovingMaxForgetsOnlyOldValues) {
  MovingMax m(3);
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.value(), 0);
  for (double v : {5.0, 1.0, 2.0}) m.add(v);
  EXPECT_EQ(m.value(), 5);
  m.add(1);  // the 5 drops out
  EXPECT_EQ(m.value(), 2);
}

TEST(Deadline, FromTheCommandLine) {
  auto start = WallClock::now();
  Deadline d(Deadline::Options{"120", "", 60, start});
  EXPECT_TRUE(d.watched());
  EXPECT_EQ(d.source(), "--deadline");
  ASSERT_TRUE(d.end());
  EXPECT_NEAR(seconds_between(start, *d.end()), 120, 1e-3);
  Deadline none(Deadline::Options{"", "", 60, start});
  EXPECT_FALSE(none.watched());
  EXPECT_FALSE(none.end());
}

TEST(Deadline, SlurmsEndTimeIsReadAgainAndMayMove) {
  // A stand-in squeue on PATH that prints what its file says, as `scontrol update TimeLimit` would
  // change the real one's answer.
  std::string dir = scratch_path("fake_squeue");
  ::mkdir(dir.c_str(), 0755);
  std::ofstream(dir + "/end") << "2030-01-01T10:00:00\n";
  std::ofstream(dir + "/squeue") << "#!/bin/sh\n[ \"$2 $3\" = \"-j 4242\" ] || exit 1\ncat " << dir << "/end\n";
  ::chmod((dir + "/squeue").c_str(), 0755);
  const std::string old_path = std::getenv("PATH") ? std::getenv("PATH") : "";
  ::setenv("PATH", (dir + ":" + old_path).c_str(), 1);
  {
    Deadline d(Deadline::Options{"", "4242", 1, WallClock::now()});
    EXPECT_EQ(d.source(), "Slurm job 4242 (squeue)");
    // Read on the thread, not in the constructor: a slow controller never delays the start.
    for (int i = 0; i < 50 && !d.end(); ++i) std::this_thread::sleep_for(100ms);
    ASSERT_TRUE(d.end());
    EXPECT_EQ(iso_local_time(*d.end()), "2030-01-01T10:00:00");
    std::ofstream(dir + "/end") << "2030-01-01T09:30:00\n";
    for (int i = 0; i < 50 && iso_local_time(*d.end()) != "2030-01-01T09:30:00"; ++i) std::this_thread::sleep_for(100ms);
    EXPECT_EQ(iso_local_time(*d.end()), "2030-01-01T09:30:00");
    // A failing query keeps what was known.
    std::ofstream(dir + "/end") << "garbage\n";
    std::this_thread::sleep_for(1500ms);
    EXPECT_EQ(iso_local_time(*d.end()), "2030-01-01T09:30:00");
  }
  ::setenv("PATH", old_path.c_str(), 1);
}

TEST(Deadline, ItsEndNeverWaitsForASqueueInFlight) {
  // A controller slow to answer: the stand-in squeue marks its start, takes 3 s, marks its end.
  // A deadline save's exit must not wait for it (Slurm's KillWait is 30 s by default; the real
  // query may take as long).
  std::string dir = scratch_path("slow_squeue");
  ::mkdir(dir.c_str(), 0755);
  std::ofstream(dir + "/squeue") << "#!/bin/sh\ntouch " << dir << "/started\nsleep 3\ntouch " << dir
                                 << "/done\necho 2030-01-01T10:00:00\n";
  ::chmod((dir + "/squeue").c_str(), 0755);
  const std::string old_path = std::getenv("PATH") ? std::getenv("PATH") : "";
  ::setenv("PATH", (dir + ":" + old_path).c_str(), 1);
  auto exists = [&](const char* name) { return ::access((dir + "/" + name).c_str(), F_OK) == 0; };
  {
    Deadline d(Deadline::Options{"", "4242", 60, WallClock::now()});
    for (int i = 0; i < 100 && !exists("started"); ++i) std::this_thread::sleep_for(50ms);
    ASSERT_TRUE(exists("started"));
  }  // destroyed while squeue runs
  EXPECT_FALSE(exists("done")) << "the Deadline's destructor waited for squeue";
  // Let the query end before PATH and the scratch folder go.
  for (int i = 0; i < 200 && !exists("done"); ++i) std::this_thread::sleep_for(50ms);
  ::setenv("PATH", old_path.c_str(), 1);
}
