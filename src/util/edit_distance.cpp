#include "resumable/util/edit_distance.h"

#include <algorithm>
#include <limits>

namespace resumable {

int64_t edit_distance(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<int64_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = static_cast<int64_t>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = static_cast<int64_t>(i);
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

void ErrorCounts::add(const std::vector<std::string>& prediction,
                      const std::vector<std::vector<std::string>>& references) {
  int64_t best = std::numeric_limits<int64_t>::max();
  size_t best_len = 0;
  for (const auto& ref : references) {
    int64_t d = edit_distance(prediction, ref);
    // Ties go to the longer reference: the rate is then the smaller one.
    if (d < best || (d == best && ref.size() > best_len)) {
      best = d;
      best_len = ref.size();
    }
  }
  words += 1;
  word_errors += best == 0 ? 0 : 1;
  phoneme_edits += static_cast<double>(best);
  reference_phonemes += static_cast<double>(best_len);
}

}  // namespace resumable
