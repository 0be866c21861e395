#include "resumable/util/edit_distance.h"

#include <gtest/gtest.h>

using namespace resumable;
using V = std::vector<std::string>;

TEST(EditDistance, KnownDistances) {
  EXPECT_EQ(edit_distance({}, {}), 0);
  EXPECT_EQ(edit_distance({"A"}, {}), 1);
  EXPECT_EQ(edit_distance({}, {"A", "B"}), 2);
  EXPECT_EQ(edit_distance({"K", "AE", "T"}, {"K", "AE", "T"}), 0);
  EXPECT_EQ(edit_distance({"K", "AE", "T"}, {"K", "AH", "T"}), 1);           // substitution
  EXPECT_EQ(edit_distance({"K", "AE", "T"}, {"K", "AE", "T", "S"}), 1);      // insertion
  EXPECT_EQ(edit_distance({"S", "K", "AE", "T"}, {"K", "AE", "T"}), 1);      // deletion
  EXPECT_EQ(edit_distance({"A", "B", "C", "D"}, {"D", "C", "B", "A"}), 4);
}

TEST(ErrorCounts, WordIsRightWhenAnyReferenceMatches) {
  ErrorCounts c;
  c.add({"R", "EH", "D"}, {{"R", "IY", "D"}, {"R", "EH", "D"}});  // matches the alternate
  c.add({"K", "AH", "T"}, {{"K", "AE", "T"}});                    // 1 edit of 3
  EXPECT_DOUBLE_EQ(c.words, 2);
  EXPECT_DOUBLE_EQ(c.wer(), 0.5);
  EXPECT_DOUBLE_EQ(c.per(), 1.0 / 6.0);
}

TEST(ErrorCounts, PerUsesTheClosestReference) {
  ErrorCounts c;
  c.add({"A"}, {{"B", "C", "D"}, {"A", "X"}});  // 1 edit to the 2-long reference, 3 to the other
  EXPECT_DOUBLE_EQ(c.phoneme_edits, 1);
  EXPECT_DOUBLE_EQ(c.reference_phonemes, 2);
  ErrorCounts empty;
  EXPECT_DOUBLE_EQ(empty.wer(), 0);
}
