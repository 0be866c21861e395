#include "resumable/data/cmudict.h"
#include "resumable/data/vocabulary.h"

#include <gtest/gtest.h>

#include <set>
#include <sstream>

using namespace resumable;

namespace {
std::vector<Pronunciation> parse(const std::string& text) {
  std::istringstream in(text);
  return parse_cmudict(in, "test.dict");
}
std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const DataError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(CmuDict, ParsesWordsAlternatesCommentsAndStress) {
  auto e = parse(
      ";;; comment line\n"
      "read R IY D\n"
      "read(2) R EH D\n"
      "\n"
      "ABANDON AH0 B AE1 N D AH0 N  # stress digits dropped, case folded\n"
      "o'neil OW N IY L\r\n");
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(e[0].word, "read");
  EXPECT_EQ(e[1].word, "read");
  EXPECT_EQ(e[1].phonemes, (std::vector<std::string>{"R", "EH", "D"}));
  EXPECT_EQ(e[2].word, "abandon");
  EXPECT_EQ(e[2].phonemes, (std::vector<std::string>{"AH", "B", "AE", "N", "D", "AH", "N"}));
  EXPECT_EQ(e[3].word, "o'neil");
}

TEST(CmuDict, MalformedLinesNameFileAndLine) {
  EXPECT_NE(error_of("good G UH D\nlonely\n").find("test.dict:2: expected 'word PH ON EMES'"), std::string::npos);
  EXPECT_NE(error_of("a(x) EY\n").find("test.dict:1: expected an alternate marker"), std::string::npos);
  EXPECT_NE(error_of("a(2 EY\n").find("test.dict:1:"), std::string::npos);
  EXPECT_NE(error_of("a EY 12\n").find("bare number"), std::string::npos);
  EXPECT_NE(error_of("a E-Y\n").find("expected ARPAbet phonemes"), std::string::npos);
}

TEST(CmuDict, MissingFileIsADataError) {
  EXPECT_THROW(load_cmudict("/nonexistent/cmudict.dict"), DataError);
}

TEST(Split, IsDeterministicAndNearTheRequestedFractions) {
  int counts[3] = {0, 0, 0};
  for (int i = 0; i < 20000; ++i) {
    std::string w = "word" + std::to_string(i);
    Split s = split_of(w, 0.05, 0.05);
    EXPECT_EQ(s, split_of(w, 0.05, 0.05));
    counts[static_cast<int>(s)]++;
  }
  EXPECT_NEAR(counts[1] / 20000.0, 0.05, 0.01);
  EXPECT_NEAR(counts[2] / 20000.0, 0.05, 0.01);
}

TEST(Corpus, KeepsAllPronunciationsOfAWordInOneSplit) {
  std::string text;
  for (int i = 0; i < 3000; ++i) {
    text += "w" + std::to_string(i) + " AH B\n";
    if (i % 3 == 0) text += "w" + std::to_string(i) + "(2) AH C\n";
  }
  auto entries = parse(text);
  G2PCorpus c = build_corpus(entries, 0.1, 0.1);
  std::set<std::string> train_words, eval_words;
  for (const auto& ex : c.train) train_words.insert(ex.word);
  for (const auto& w : c.validation) eval_words.insert(w.word);
  for (const auto& w : c.test) eval_words.insert(w.word);
  for (const auto& w : eval_words) EXPECT_EQ(train_words.count(w), 0u) << w << " leaks into training";
  EXPECT_EQ(train_words.size() + eval_words.size(), 3000u);
  EXPECT_EQ(c.train_words, train_words.size());
  for (const auto& w : c.validation) {
    int i = std::stoi(w.word.substr(1));
    EXPECT_EQ(w.pronunciations.size(), i % 3 == 0 ? 2u : 1u);
  }
}

TEST(Corpus, LimitWordsTakesAFixedSubset) {
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "w" + std::to_string(i) + " AH\n";
  auto entries = parse(text);
  auto a = build_corpus(entries, 0.05, 0.05, 100), b = build_corpus(entries, 0.05, 0.05, 100);
  EXPECT_EQ(a.train_words, 100u);
  ASSERT_EQ(a.train.size(), b.train.size());
  for (size_t i = 0; i < a.train.size(); ++i) EXPECT_EQ(a.train[i].word, b.train[i].word);
  EXPECT_EQ(a.validation.size(), build_corpus(entries, 0.05, 0.05).validation.size());
}

TEST(Vocabulary, EncodesDecodesAndReservesSpecials) {
  auto entries = parse("ab AH B\nba B AH\n");
  Vocabulary g = grapheme_vocabulary(entries), p = phoneme_vocabulary(entries);
  EXPECT_EQ(g.size(), Vocabulary::kNumSpecial + 2);
  EXPECT_EQ(p.symbols(), (std::vector<std::string>{"AH", "B"}));
  auto ids = p.encode({"B", "AH", "ZZ"});
  EXPECT_EQ(ids[2], Vocabulary::kUnk);
  ids = p.encode({"B", "AH"});
  ids.push_back(Vocabulary::kEos);
  ids.push_back(p.id("B"));
  EXPECT_EQ(p.decode(ids), (std::vector<std::string>{"B", "AH"}));
  EXPECT_EQ(graphemes_of("ab"), (std::vector<std::string>{"a", "b"}));
}
