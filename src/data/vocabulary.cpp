#include "resumable/data/vocabulary.h"

#include <set>
#include <stdexcept>

namespace resumable {

Vocabulary::Vocabulary(std::vector<std::string> symbols) : symbols_(std::move(symbols)) {
  for (size_t i = 0; i < symbols_.size(); ++i) ids_.emplace(symbols_[i], kNumSpecial + static_cast<int64_t>(i));
}

int64_t Vocabulary::id(const std::string& symbol) const {
  auto it = ids_.find(symbol);
  return it == ids_.end() ? kUnk : it->second;
}

const std::string& Vocabulary::symbol(int64_t id) const {
  static const std::string specials[kNumSpecial] = {"<pad>", "<bos>", "<eos>", "<unk>"};
  if (id >= 0 && id < kNumSpecial) return specials[id];
  if (id < 0 || id >= size()) throw std::out_of_range("vocabulary id " + std::to_string(id) + " out of range");
  return symbols_[static_cast<size_t>(id - kNumSpecial)];
}

std::vector<int64_t> Vocabulary::encode(const std::vector<std::string>& symbols) const {
  std::vector<int64_t> out;
  out.reserve(symbols.size());
  for (const auto& s : symbols) out.push_back(id(s));
  return out;
}

std::vector<std::string> Vocabulary::decode(const std::vector<int64_t>& ids) const {
  std::vector<std::string> out;
  for (int64_t i : ids) {
    if (i == kEos) break;
    if (i == kPad || i == kBos) continue;
    out.push_back(symbol(i));
  }
  return out;
}

std::vector<std::string> graphemes_of(const std::string& word) {
  std::vector<std::string> out;
  out.reserve(word.size());
  for (char c : word) out.emplace_back(1, c);
  return out;
}

Vocabulary grapheme_vocabulary(const std::vector<Pronunciation>& entries) {
  std::set<std::string> s;
  for (const auto& e : entries)
    for (char c : e.word) s.insert(std::string(1, c));
  return Vocabulary({s.begin(), s.end()});
}

Vocabulary phoneme_vocabulary(const std::vector<Pronunciation>& entries) {
  std::set<std::string> s;
  for (const auto& e : entries) s.insert(e.phonemes.begin(), e.phonemes.end());
  return Vocabulary({s.begin(), s.end()});
}

}  // namespace resumable
