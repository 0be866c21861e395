// Fuzzes the CMUdict parser and the corpus split built on it.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "resumable/data/cmudict.h"
#include "resumable/data/vocabulary.h"

using namespace resumable;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  try {
    auto entries = parse_cmudict(in, "fuzz.dict");
    for (const auto& e : entries)
      if (e.word.empty() || e.phonemes.empty()) __builtin_trap();  // the parser promises both
    G2PCorpus c = build_corpus(entries, 0.2, 0.2, 3);
    Vocabulary g = grapheme_vocabulary(entries), p = phoneme_vocabulary(entries);
    for (const auto& ex : c.train) p.decode(p.encode(ex.phonemes));
  } catch (const DataError&) {
  }
  return 0;
}
