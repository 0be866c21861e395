#include "resumable/util/xxhash64.h"

#include <gtest/gtest.h>

#include <string>

using namespace resumable;

TEST(XXH64, KnownVectors) {
  // Reference values of the xxHash specification's implementation.
  EXPECT_EQ(xxhash64("", 0, 0), 0xEF46DB3751D8E999ULL);
  EXPECT_EQ(xxhash64(std::string_view("abc")), 0x44BC2CF5AD770999ULL);
  EXPECT_EQ(xxhash64(std::string_view("Nobody inspects the spammish repetition")), 0xFBCEA83C8A378BF1ULL);
}

TEST(XXH64, StreamingEqualsOneShotForEverySplit) {
  std::string data;
  for (int i = 0; i < 200; ++i) data.push_back(static_cast<char>(i * 37 + 11));
  uint64_t whole = xxhash64(data.data(), data.size(), 42);
  for (size_t split = 0; split <= data.size(); split += 7) {
    XXH64 h(42);
    h.update(data.data(), split);
    h.update(data.data() + split, data.size() - split);
    EXPECT_EQ(h.digest(), whole) << "split at " << split;
  }
}

TEST(XXH64, SeedAndSingleBitChangeTheHash) {
  std::string a(100, 'x'), b = a;
  b[50] ^= 1;
  EXPECT_NE(xxhash64(a), xxhash64(b));
  EXPECT_NE(xxhash64(a, 1), xxhash64(a, 2));
  EXPECT_EQ(hex64(0x0123456789abcdefULL), "0123456789abcdef");
}

TEST(XXH3, KnownVectorsAndStreamingEqualsOneShot) {
  // Reference values of XXH3_64bits (xxHash's own sanity tests).
  EXPECT_EQ(xxh3("", 0, 0), 0x2D06800538D394C2ULL);
  std::string data;
  for (int i = 0; i < 5000; ++i) data.push_back(static_cast<char>(i * 37 + 11));
  uint64_t whole = xxh3(data.data(), data.size(), 42);
  EXPECT_NE(whole, xxhash64(data.data(), data.size(), 42));
  for (size_t split = 0; split <= data.size(); split += 333) {
    XXH3 h(42);
    h.update(data.data(), split);
    h.update(data.data() + split, data.size() - split);
    EXPECT_EQ(h.digest(), whole) << "split at " << split;
  }
}
