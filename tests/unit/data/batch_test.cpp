#include "resumable/data/batch.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

using namespace resumable;

TEST(Collate, PadsAndShiftsTargets) {
  EncodedExample a{{5, 6, 7}, {8, 9}}, b{{5}, {8, 9, 10, 11}};
  Batch batch = collate({&a, &b}, {1.0f, 0.0f}, torch::kCPU);
  EXPECT_EQ(batch.source.sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(batch.target_in.sizes(), (std::vector<int64_t>{2, 5}));
  auto ids = [](std::vector<int64_t> v) { return torch::tensor(v, torch::kLong); };
  EXPECT_TRUE(torch::equal(batch.source[1], ids({5, 0, 0})));
  EXPECT_TRUE(torch::equal(batch.target_in[0], ids({Vocabulary::kBos, 8, 9, 0, 0})));
  EXPECT_TRUE(torch::equal(batch.target_out[0], ids({8, 9, Vocabulary::kEos, 0, 0})));
  EXPECT_TRUE(torch::equal(batch.target_out[1], ids({8, 9, 10, 11, Vocabulary::kEos})));
  EXPECT_DOUBLE_EQ(batch.tokens, 3.0);  // the zero-weight placeholder counts nothing
  EXPECT_FLOAT_EQ(batch.weight[1].item<float>(), 0.0f);
}

TEST(Collate, TheRealTokensPositionsAreThoseOfTheNonPaddingIds) {
  EncodedExample a{{5, 6, 7}, {8, 9}}, b{{5}, {8, 9, 10, 11}}, c{{4, 4}, {}};
  Batch batch = collate({&a, &b, &c}, {1.0f, 1.0f, 1.0f}, torch::kCPU);
  auto real = [](const at::Tensor& ids) { return ids.reshape({-1}).ne(Vocabulary::kPad).nonzero().squeeze(1); };
  EXPECT_TRUE(torch::equal(batch.source_tokens, real(batch.source)));
  EXPECT_TRUE(torch::equal(batch.target_tokens, real(batch.target_in)));
  EXPECT_TRUE(torch::equal(batch.target_tokens, real(batch.target_out)));  // same positions: shifted by one
}

TEST(Collate, SourcesForDecoding) {
  std::vector<int64_t> a{4, 5}, b{6};
  auto t = collate_sources({&a, &b}, torch::kCPU);
  EXPECT_TRUE(torch::equal(t, torch::tensor({{4, 5}, {6, 0}}, torch::kLong)));
}

TEST(EncodeCorpus, RightToLeftTrainsOnEachPronunciationLastPhonemeFirst) {
  std::vector<Pronunciation> entries;
  for (int i = 0; i < 200; ++i) entries.push_back({"w" + std::to_string(i), {"K", "AE", "T", i % 2 ? "S" : "Z"}});
  G2PCorpus corpus = build_corpus(entries, 0.1, 0.1);
  Vocabulary g = grapheme_vocabulary(entries), p = phoneme_vocabulary(entries);
  EncodedCorpus forward = encode_corpus(corpus, g, p), backward = encode_corpus(corpus, g, p, /*right_to_left=*/true);
  ASSERT_EQ(forward.train.size(), corpus.train.size());
  ASSERT_EQ(backward.train.size(), corpus.train.size());
  for (size_t i = 0; i < corpus.train.size(); ++i) {
    EXPECT_EQ(forward.train[i].target, p.encode(corpus.train[i].phonemes));
    std::vector<int64_t> reversed(forward.train[i].target.rbegin(), forward.train[i].target.rend());
    EXPECT_EQ(backward.train[i].target, reversed);
    EXPECT_EQ(backward.train[i].source, forward.train[i].source);  // words still read left to right
  }
  // Validation and test keep only sources: their references stay in word order.
  EXPECT_EQ(backward.validation_sources, forward.validation_sources);
}
