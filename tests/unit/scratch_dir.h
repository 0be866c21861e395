// Where a unit test writes its files: a directory of the test process's own under the temp dir,
// removed with everything in it when the process ends. ctest runs every test in a process of its
// own, so a run leaves nothing behind in /tmp, however many times the suite runs.
#pragma once

#include <ftw.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <stdexcept>
#include <string>

// Removes `path` and everything under it, if there. nftw rather than std::filesystem::remove_all,
// which, taken from libtorch's copy in the torch tests, crashes.
inline void remove_tree(const std::string& path) {
  auto remove_entry = [](const char* entry, const struct stat*, int, struct FTW*) { return ::remove(entry), 0; };
  ::nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

// Not in a namespace: the tests say `using namespace resumable`, and gtest owns `testing`.
inline const std::string& scratch_root() {
  struct Root {
    std::string path;
    pid_t owner = ::getpid();  // a forked child must not remove its parent's files on exit
    Root() {
      std::string pattern = ::testing::TempDir() + "resumable-test-XXXXXX";
      if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp " + pattern + " failed");
      path = pattern;
    }
    ~Root() {
      if (::getpid() == owner) remove_tree(path);
    }
  };
  static Root root;
  return root.path;
}

// A path named `name` in the scratch directory (nothing is created there).
inline std::string scratch_path(const std::string& name) { return scratch_root() + "/" + name; }
