// Symbol <-> id tables for graphemes (characters of the word) and ARPAbet phonemes. Built from the
// whole dictionary, saved in every checkpoint and compared on resume.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "resumable/data/cmudict.h"

namespace resumable {

class Vocabulary {
 public:
  static constexpr int64_t kPad = 0;
  static constexpr int64_t kBos = 1;
  static constexpr int64_t kEos = 2;
  static constexpr int64_t kUnk = 3;
  static constexpr int64_t kNumSpecial = 4;

  Vocabulary() = default;
  // `symbols` excludes the specials, which take ids 0..3.
  explicit Vocabulary(std::vector<std::string> symbols);

  int64_t size() const { return kNumSpecial + static_cast<int64_t>(symbols_.size()); }
  int64_t id(const std::string& symbol) const;  // kUnk when unknown
  const std::string& symbol(int64_t id) const;
  const std::vector<std::string>& symbols() const { return symbols_; }

  std::vector<int64_t> encode(const std::vector<std::string>& symbols) const;
  // Stops at kEos; skips pad/bos.
  std::vector<std::string> decode(const std::vector<int64_t>& ids) const;

 private:
  std::vector<std::string> symbols_;
  std::unordered_map<std::string, int64_t> ids_;
};

// A word as a sequence of one-character symbols.
std::vector<std::string> graphemes_of(const std::string& word);

Vocabulary grapheme_vocabulary(const std::vector<Pronunciation>& entries);
Vocabulary phoneme_vocabulary(const std::vector<Pronunciation>& entries);

}  // namespace resumable
