// The CMU Pronouncing Dictionary: parsing, the deterministic train/validation/test split, and the
// corpus the trainer consumes. Torch-free: ids become tensors only in batch.cpp.
#pragma once

#include <istream>
#include <string>
#include <vector>

#include "resumable/util/errors.h"

namespace resumable {

struct Pronunciation {
  std::string word;                   // lower-case, alternate marker removed: "read(2)" -> "read"
  std::vector<std::string> phonemes;  // ARPAbet without stress digits: AH0 -> AH
};

// A phoneme as the published G2P results spell it: stress digits dropped, upper case (ah0 -> AH).
std::string stress_free_phoneme(std::string phoneme);

// Lines are `word PH ON EMES`, alternates `word(2) ...`; `;;;` lines and `# ...` tails are
// comments, blank lines are skipped. A malformed line throws DataError "origin:LINE: problem".
std::vector<Pronunciation> parse_cmudict(std::istream& in, const std::string& origin);
std::vector<Pronunciation> load_cmudict(const std::string& path);

enum class Split { kTrain, kValidation, kTest };

// The split is a pure function of the word: XXH64(word) mapped to [0, 1) lands in test below
// test_fraction, then validation below test_fraction + val_fraction, else train. All
// pronunciations of a word share its split, so no word leaks from training into evaluation.
Split split_of(const std::string& word, double val_fraction, double test_fraction);

struct G2PExample {
  std::string word;
  std::vector<std::string> phonemes;
};

// Evaluation is per word: a prediction is right when it equals any of the word's pronunciations.
struct WordReferences {
  std::string word;
  std::vector<std::vector<std::string>> pronunciations;
};

struct G2PCorpus {
  std::vector<G2PExample> train;          // one example per (word, pronunciation)
  std::vector<WordReferences> validation;  // one entry per word
  std::vector<WordReferences> test;
  size_t train_words = 0;
};

// limit_words > 0 keeps that many training words, the ones with the smallest hash (a fixed,
// unbiased subset), for quick runs and tests.
G2PCorpus build_corpus(const std::vector<Pronunciation>& entries, double val_fraction,
                       double test_fraction, size_t limit_words = 0);

// "xxh64:<hex>" of the training split's words and pronunciations in order: a checkpoint records
// it, and a resume on other data is refused (unless --allow-data-drift).
std::string training_data_fingerprint(const G2PCorpus& corpus);

}  // namespace resumable
