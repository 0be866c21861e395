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
#include <vector>

#include "../scratch_dir.h"

using namespace resumable;

namespace {

std::string fresh_dir(const std::string& name) {
  std::string d = scratch_path("atomic_" + name);
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

namespace {
// A file-size limit of `limit` bytes makes write() fail with EFBIG (SIGXFSZ ignored), like a full
// disk: writing `bytes` over an existing file must fail with a SaveError and keep the old file.
void expect_write_error_keeps_the_old_file(const std::string& name, AtomicFileWriter::Caching caching,
                                           rlim_t limit, size_t bytes) {
  auto dir = fresh_dir(name);
  std::ofstream(dir + "/f") << "old";
  auto previous = std::signal(SIGXFSZ, SIG_IGN);
  rlimit old_limit;
  ::getrlimit(RLIMIT_FSIZE, &old_limit);
  rlimit small = old_limit;
  small.rlim_cur = limit;
  ::setrlimit(RLIMIT_FSIZE, &small);
  std::string message;
  try {
    AtomicFileWriter w(dir + "/f", caching);
    std::string big(bytes, 'x');
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
}  // namespace

TEST(AtomicFile, WriteErrorIsASaveErrorAndKeepsTheOldFile) {
  expect_write_error_keeps_the_old_file("limit", AtomicFileWriter::Caching::kPageCache, 1024, 4096);
}

namespace {
std::string pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>((seed = seed * 1664525u + 1013904223u) >> 24);
  return s;
}
// Pieces of awkward sizes through kDirect: the staging buffer's edges, the aligned blocks and the
// unaligned tail must all land in order.
void expect_direct_write_round_trips(const std::string& dir, const std::vector<size_t>& sizes) {
  std::string expected;
  {
    AtomicFileWriter w(dir + "/f", AtomicFileWriter::Caching::kDirect);
    for (size_t i = 0; i < sizes.size(); ++i) {
      std::string piece = pattern(sizes[i], static_cast<uint32_t>(i + 1));
      w.write(piece.data(), piece.size());
      expected += piece;
    }
    EXPECT_EQ(w.bytes_written(), expected.size());
    w.commit();
  }
  EXPECT_TRUE(read(dir + "/f") == expected) << "content differs, " << read(dir + "/f").size() << " vs "
                                            << expected.size() << " bytes";
  EXPECT_EQ(count_entries(dir), 1);
}
}  // namespace

TEST(AtomicFile, DirectWritesKeepEveryByteInOrder) {
  auto dir = fresh_dir("direct");
  {
    AtomicFileWriter probe(dir + "/probe", AtomicFileWriter::Caching::kDirect);
    // The test directory is on a disk file system, which takes O_DIRECT (tmpfs would fall back).
    RecordProperty("direct", probe.direct() ? "yes" : "no");
  }
  expect_direct_write_round_trips(dir, {1, 4095, (8u << 20) + 7, 100000, 3});
  expect_direct_write_round_trips(dir, {8u << 20, 8u << 20});  // whole buffers, no tail
  expect_direct_write_round_trips(dir, {10});                   // tail only
  expect_direct_write_round_trips(dir, {});                     // empty file
}

TEST(AtomicFile, DirectWritesFallBackWhereTheFileSystemRefusesThem) {
  if (::access("/dev/shm", W_OK) != 0) GTEST_SKIP() << "no /dev/shm";
  auto dir = std::string("/dev/shm/atomic_direct_") + std::to_string(::getpid());
  ::mkdir(dir.c_str(), 0755);
  expect_direct_write_round_trips(dir, {5, (8u << 20) + 4096, 77});
  ::unlink((dir + "/f").c_str());
  ::rmdir(dir.c_str());
}

TEST(AtomicFile, DirectWriteErrorIsASaveErrorAndKeepsTheOldFile) {
  expect_write_error_keeps_the_old_file("direct_limit", AtomicFileWriter::Caching::kDirect, 1 << 20, 20u << 20);
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
