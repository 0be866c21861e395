#include "resumable/util/atomic_file.h"
#include "resumable/util/errors.h"

#include <gtest/gtest.h>

#include <csignal>
#include <dirent.h>
#include <fstream>
#include <sstream>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace resumable;

namespace {

std::string fresh_dir(const std::string& name) {
  std::string d = ::testing::TempDir() + "atomic_" + name + "_" + std::to_string(::getpid());
  ::mkdir(d.c_str(), 0755);
  return d;
}
std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
int count_entries(const std::string& dir) {
  int n = 0;
  DIR* d = ::opendir(dir.c_str());
  while (dirent* e = ::readdir(d))
    if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") ++n;
  ::closedir(d);
  return n;
}

}  // namespace

TEST(AtomicFile, CommitReplacesTheTarget) {
  auto dir = fresh_dir("commit");
  std::ofstream(dir + "/f") << "old";
  {
    AtomicFileWriter w(dir + "/f");
    w.write("new contents", 12);
    EXPECT_EQ(read(dir + "/f"), "old");  // untouched until commit
    w.commit();
  }
  EXPECT_EQ(read(dir + "/f"), "new contents");
  EXPECT_EQ(count_entries(dir), 1);
}

TEST(AtomicFile, AbandonedWriteLeavesTargetAndNoTemporary) {
  auto dir = fresh_dir("abandon");
  std::ofstream(dir + "/f") << "old";
  {
    AtomicFileWriter w(dir + "/f");
    w.write("partial", 7);
  }
  EXPECT_EQ(read(dir + "/f"), "old");
  EXPECT_EQ(count_entries(dir), 1);
}

TEST(AtomicFile, CommitAsPublishesEveryName) {
  auto dir = fresh_dir("names");
  AtomicFileWriter w(dir + "/a");
  w.write("xyz", 3);
  w.commit_as({dir + "/a", dir + "/b", dir + "/c"});
  EXPECT_EQ(read(dir + "/a"), "xyz");
  EXPECT_EQ(read(dir + "/b"), "xyz");
  EXPECT_EQ(read(dir + "/c"), "xyz");
  EXPECT_EQ(count_entries(dir), 3);
}

TEST(AtomicFile, WriteErrorIsASaveErrorAndKeepsTheOldFile) {
  // A file-size limit makes write() fail with EFBIG (SIGXFSZ ignored), like a full disk.
  auto dir = fresh_dir("limit");
  std::ofstream(dir + "/f") << "old";
  auto previous = std::signal(SIGXFSZ, SIG_IGN);
  rlimit old_limit;
  ::getrlimit(RLIMIT_FSIZE, &old_limit);
  rlimit small = old_limit;
  small.rlim_cur = 1024;
  ::setrlimit(RLIMIT_FSIZE, &small);
  std::string message;
  try {
    AtomicFileWriter w(dir + "/f");
    std::string big(4096, 'x');
    w.write(big.data(), big.size());
    w.commit();
  } catch (const SaveError& e) {
    message = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  std::signal(SIGXFSZ, previous);
  EXPECT_NE(message.find(dir + "/f: cannot write"), std::string::npos) << message;
  EXPECT_EQ(read(dir + "/f"), "old");
  EXPECT_EQ(count_entries(dir), 1);
}

TEST(AtomicFile, MissingDirectoryIsASaveError) {
  EXPECT_THROW(AtomicFileWriter("/nonexistent-dir/x/f"), SaveError);
}

TEST(AtomicFile, StaleTemporariesAreRemoved) {
  auto dir = fresh_dir("stale");
  std::ofstream(dir + "/.last.pt.tmp.123.0") << "junk";
  std::ofstream(dir + "/last.pt") << "keep";
  EXPECT_EQ(remove_stale_temporaries(dir), 1);
  EXPECT_EQ(count_entries(dir), 1);
}

TEST(AtomicFile, PublishCopyReplacesAtomically) {
  auto dir = fresh_dir("publish");
  std::ofstream(dir + "/src") << "data";
  std::ofstream(dir + "/dst") << "old";
  publish_copy(dir + "/src", dir + "/dst");
  EXPECT_EQ(read(dir + "/dst"), "data");
  EXPECT_EQ(count_entries(dir), 2);
}

TEST(AtomicFile, AFailureAfterTheFirstNameIsReportedAndTheRestStillPublished) {
  auto dir = fresh_dir("partial");
  ASSERT_EQ(::mkdir((dir + "/b").c_str(), 0755), 0);  // a non-empty directory cannot be replaced
  std::ofstream(dir + "/b/x") << "x";
  AtomicFileWriter w(dir + "/a");
  w.write("data", 4);
  AtomicFileWriter::Published p = w.commit_as({dir + "/a", dir + "/b", dir + "/c"});
  EXPECT_EQ(p.names, (std::vector<std::string>{dir + "/a", dir + "/c"}));
  ASSERT_EQ(p.problems.size(), 1u);
  EXPECT_NE(p.problems[0].find(dir + "/b"), std::string::npos);
  EXPECT_EQ(read(dir + "/a"), "data");
  EXPECT_EQ(read(dir + "/c"), "data");
}

TEST(AtomicFile, NothingPublishedMeansAnErrorAndEveryTargetIntact) {
  auto dir = fresh_dir("first");
  ASSERT_EQ(::mkdir((dir + "/a").c_str(), 0755), 0);
  std::ofstream(dir + "/a/x") << "x";
  std::ofstream(dir + "/c") << "old";
  {
    AtomicFileWriter w(dir + "/a");
    w.write("data", 4);
    EXPECT_THROW(w.commit_as({dir + "/a", dir + "/c"}), SaveError);
  }
  EXPECT_EQ(read(dir + "/c"), "old");
  EXPECT_EQ(count_entries(dir), 2);  // a/ and c: no temporary left
}

TEST(AtomicFile, CreateDirectoriesMakesEveryMissingLevel) {
  auto dir = fresh_dir("mkdirs");
  create_directories(dir + "/x/y/z");
  struct stat st;
  EXPECT_EQ(::stat((dir + "/x/y/z").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  create_directories(dir + "/x/y/z");  // existing: fine
  std::ofstream(dir + "/file") << "x";
  EXPECT_THROW(create_directories(dir + "/file/sub"), SaveError);
}

TEST(AtomicFile, WriteErrorsCarryTheirErrno) {
  auto dir = fresh_dir("errno");
  try {
    AtomicFileWriter w(dir + "/missing/f");
    FAIL();
  } catch (const SaveError& e) {
    EXPECT_EQ(e.error_code(), ENOENT);
  }
}
