// Word and phoneme error rates, the G2P quality measures of the published results: a word is
// wrong unless the prediction equals one of its reference pronunciations (WER); phoneme errors
// are the Levenshtein distance to the closest reference over that reference's length (PER).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace resumable {

int64_t edit_distance(const std::vector<std::string>& a, const std::vector<std::string>& b);

// Sums over words; reduced across ranks by adding, then turned into rates.
struct ErrorCounts {
  double words = 0;
  double word_errors = 0;
  double phoneme_edits = 0;  // edits to the closest reference
  double reference_phonemes = 0;  // length of that closest reference

  void add(const std::vector<std::string>& prediction, const std::vector<std::vector<std::string>>& references);
  double wer() const { return words > 0 ? word_errors / words : 0; }
  double per() const { return reference_phonemes > 0 ? phoneme_edits / reference_phonemes : 0; }
};

}  // namespace resumable
