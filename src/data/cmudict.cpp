#include "resumable/data/cmudict.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <sstream>

#include "resumable/util/xxhash64.h"

namespace resumable {
namespace {

std::string excerpt(const std::string& line) {
  return line.size() > 60 ? line.substr(0, 57) + "..." : line;
}

}  // namespace

std::vector<Pronunciation> parse_cmudict(std::istream& in, const std::string& origin) {
  std::vector<Pronunciation> out;
  std::string line;
  size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    auto fail = [&](const std::string& why) {
      throw DataError(origin + ":" + std::to_string(number) + ": " + why + " in line '" + excerpt(line) + "'");
    };
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.rfind(";;;", 0) == 0) continue;
    if (auto hash = line.find(" #"); hash != std::string::npos) line.erase(hash);
    std::istringstream fields(line);
    std::string word;
    if (!(fields >> word)) continue;  // blank line
    if (word[0] == '#') continue;
    Pronunciation p;
    if (auto open = word.find('('); open != std::string::npos) {
      // "word(2)": the marker must be a number in parentheses at the end.
      if (word.back() != ')' || open == 0 || open + 2 >= word.size())
        fail("expected an alternate marker like word(2)");
      for (size_t i = open + 1; i + 1 < word.size(); ++i)
        if (!std::isdigit(static_cast<unsigned char>(word[i]))) fail("expected an alternate marker like word(2)");
      word.resize(open);
    }
    for (char& c : word) {
      if (static_cast<unsigned char>(c) < 0x20 || c == ')') fail("unexpected character in word");
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    p.word = word;
    std::string ph;
    while (fields >> ph) {
      // Checked before upper case, so an error quotes the phoneme as the file spells it.
      const std::string spelled = ph.substr(0, ph.find_last_not_of("0123456789") + 1);
      if (spelled.empty()) fail("expected an ARPAbet phoneme, got a bare number");
      for (char c : spelled)
        if (!std::isalpha(static_cast<unsigned char>(c))) fail("expected ARPAbet phonemes (letters), got '" + spelled + "'");
      p.phonemes.push_back(stress_free_phoneme(ph));
    }
    if (p.phonemes.empty()) fail("expected 'word PH ON EMES', found no phonemes");
    out.push_back(std::move(p));
  }
  if (in.bad()) throw DataError(origin + ": read error");
  return out;
}

std::vector<Pronunciation> load_cmudict(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw DataError(path + ": cannot open dataset (run scripts/setup, or set --data PATH)");
  auto entries = parse_cmudict(in, path);
  if (entries.empty()) throw DataError(path + ": no pronunciations found (expected CMUdict lines 'word PH ON EMES')");
  return entries;
}

std::string stress_free_phoneme(std::string phoneme) {
  while (!phoneme.empty() && std::isdigit(static_cast<unsigned char>(phoneme.back()))) phoneme.pop_back();
  for (char& c : phoneme) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return phoneme;
}

Split split_of(const std::string& word, double val_fraction, double test_fraction) {
  // 53 bits of the hash give a uniform double in [0, 1).
  double u = static_cast<double>(xxhash64(word) >> 11) * (1.0 / 9007199254740992.0);
  if (u < test_fraction) return Split::kTest;
  if (u < test_fraction + val_fraction) return Split::kValidation;
  return Split::kTrain;
}

G2PCorpus build_corpus(const std::vector<Pronunciation>& entries, double val_fraction, double test_fraction,
                       size_t limit_words) {
  // Group alternates by word, keeping file order within a word.
  std::map<std::string, std::vector<std::vector<std::string>>> by_word;
  for (const auto& e : entries) {
    auto& prons = by_word[e.word];
    if (std::find(prons.begin(), prons.end(), e.phonemes) == prons.end()) prons.push_back(e.phonemes);
  }
  std::vector<std::string> train_words;
  G2PCorpus corpus;
  for (const auto& [word, prons] : by_word) {
    switch (split_of(word, val_fraction, test_fraction)) {
      case Split::kTrain: train_words.push_back(word); break;
      case Split::kValidation: corpus.validation.push_back({word, prons}); break;
      case Split::kTest: corpus.test.push_back({word, prons}); break;
    }
  }
  if (limit_words > 0 && limit_words < train_words.size()) {
    std::stable_sort(train_words.begin(), train_words.end(), [](const std::string& a, const std::string& b) {
      return xxhash64(a, 1) < xxhash64(b, 1);
    });
    train_words.resize(limit_words);
    std::sort(train_words.begin(), train_words.end());
  }
  // Evaluation lists in hash order, so eval_limit takes an unbiased sample, not the a-words.
  for (auto* split : {&corpus.validation, &corpus.test})
    std::stable_sort(split->begin(), split->end(), [](const WordReferences& a, const WordReferences& b) {
      return xxhash64(a.word, 2) < xxhash64(b.word, 2);
    });
  corpus.train_words = train_words.size();
  for (const auto& w : train_words)
    for (const auto& p : by_word[w]) corpus.train.push_back({w, p});
  return corpus;
}

std::string training_data_fingerprint(const G2PCorpus& corpus) {
  XXH64 h;
  for (const auto& ex : corpus.train) {
    h.update(ex.word.data(), ex.word.size() + 1);
    for (const auto& p : ex.phonemes) h.update(p.data(), p.size() + 1);
  }
  return "xxh64:" + hex64(h.digest());
}

}  // namespace resumable
