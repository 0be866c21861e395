#include "resumable/checkpoint/pickle_check.h"

#include <gtest/gtest.h>

#include <string>

#include "resumable/util/errors.h"

using namespace resumable;
using namespace std::string_literals;

namespace {

// Split literals: a hex escape swallows every hex digit after it ("\x00a" is one byte).
// What Python's pickle.dumps({'a': [1, 2], 'b': (1.5, None, True)}, protocol=2) writes.
const std::string kProtocol2 =
    "\x80\x02}q\x00(X\x01\x00\x00\x00" "aq\x01]q\x02(K\x01K\x02" "eX\x01\x00\x00\x00" "bq\x03G?\xf8\x00\x00\x00\x00\x00\x00N\x88\x87q\x04u."s;
// pickle.dumps({'a': [1, 2]}, protocol=0) and protocol=4 (text memo, MEMOIZE, FRAME).
const std::string kProtocol0 = "(dp0\nVa\np1\n(lp2\nI1\naI2\nas."s;
const std::string kProtocol4 = "\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01" "a\x94]\x94(K\x01K\x02" "es."s;

std::string refusal(const std::string& pickle) {
  try {
    check_pickle_structure(pickle, "x.pt");
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(PickleCheck, AcceptsWhatPythonWrites) {
  ASSERT_EQ(kProtocol2.size(), 47u);
  ASSERT_EQ(kProtocol4.size(), 27u);
  EXPECT_NO_THROW(check_pickle_structure(kProtocol2, "x.pt"));
  EXPECT_NO_THROW(check_pickle_structure(kProtocol0, "x.pt"));
  EXPECT_NO_THROW(check_pickle_structure(kProtocol4, "x.pt"));
  // The unpickler stops at STOP, so whatever follows is never read.
  EXPECT_NO_THROW(check_pickle_structure(kProtocol2 + "\xff\xff"s, "x.pt"));
}

TEST(PickleCheck, RefusesAMemoIndexThatSkipsAhead) {
  // The fuzzer's find: LONG_BINPUT 0x88000000 made libtorch resize its memo to ~36 GB.
  std::string forged = kProtocol2;
  forged.replace(2, 3, "}r\x00\x00\x00\x88"s);
  EXPECT_EQ(refusal(forged), "x.pt: pickle record: memo index 2281701376 skips ahead of 0 entries at byte 3");
  std::string text = kProtocol0;
  text.replace(text.find("p2\n"), 3, "p99\n");
  EXPECT_NE(refusal(text).find("memo index 99 skips ahead of 2 entries"), std::string::npos);
}

TEST(PickleCheck, RefusesAMemoReadBeforeItsStore) {
  // BINGET 5 where only entries 0..4 exist would be fine; BINGET 5 right after PROTO is not.
  EXPECT_NE(refusal("\x80\x02h\x05."s).find("memo index 5 read before it was stored"), std::string::npos);
}

TEST(PickleCheck, RefusesLengthsPastTheEnd) {
  // BINUNICODE claiming 4 GB, BINUNICODE8 claiming 2^63: libtorch would allocate that first.
  EXPECT_NE(refusal("\x80\x02X\xff\xff\xff\xff" "abc."s).find("length 4294967295 runs past the end (4 bytes left)"),
            std::string::npos);
  EXPECT_NE(refusal("\x80\x02\x8d\x00\x00\x00\x00\x00\x00\x00\x80."s).find("runs past the end"), std::string::npos);
  EXPECT_NE(refusal("\x80\x02G\x00\x00"s).find("truncated argument at byte 2"), std::string::npos);
}

TEST(PickleCheck, RefusesTruncationUnknownOpcodesAndMissingStop) {
  EXPECT_NE(refusal(kProtocol2.substr(0, kProtocol2.size() - 1)).find("ends without STOP"), std::string::npos);
  EXPECT_NE(refusal("\x80\x02\xff."s).find("unknown opcode 0xff at byte 2"), std::string::npos);
  EXPECT_NE(refusal("\x80\x02" "ctorch\nTensor"s).find("unterminated text argument"), std::string::npos);
  EXPECT_NE(refusal(""s).find("ends without STOP at byte 0"), std::string::npos);
}

TEST(PickleCheck, EveryTruncationOfAValidPickleIsRefused) {
  for (size_t n = 0; n < kProtocol2.size(); ++n)
    EXPECT_NE(refusal(kProtocol2.substr(0, n)), "") << "truncated to " << n << " bytes";
}
