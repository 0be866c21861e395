#include "resumable/model/decoding.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "resumable/data/vocabulary.h"

namespace resumable {
namespace {

using Encoded = G2PTransformerImpl::Encoded;

std::vector<Encoded> encode_all(const Ensemble& models, const torch::Tensor& source) {
  if (models.empty()) throw std::invalid_argument("decoding: an ensemble needs at least one model");
  std::vector<Encoded> out;
  for (G2PTransformer m : models) out.push_back(m->encode_source(source));  // a holder copy: not const
  return out;
}

// log(mean_i p_i) from each member's logits: the members vote with probabilities, so one member
// that is sure of a phoneme outweighs another that is unsure of it.
torch::Tensor mean_log_probs(std::vector<torch::Tensor> logits) {
  for (auto& l : logits) l = torch::log_softmax(l.to(torch::kFloat), -1);
  if (logits.size() == 1) return logits[0];
  return torch::logsumexp(torch::stack(logits), 0) - std::log(static_cast<double>(logits.size()));
}

torch::Tensor next_log_probs(const Ensemble& models, const std::vector<Encoded>& encoded, const torch::Tensor& prefixes) {
  std::vector<torch::Tensor> logits;
  for (size_t i = 0; i < models.size(); ++i) logits.push_back(models[i].ptr()->next_logits(prefixes, encoded[i]));
  return mean_log_probs(std::move(logits));
}

// Greedy decoding by members that all read the same way, in their order.
torch::Tensor greedy_one_direction(const Ensemble& models, const torch::Tensor& source, int64_t max_len) {
  std::vector<Encoded> encoded = encode_all(models, source);
  const int64_t b = source.size(0);
  auto out = torch::full({b, 1}, Vocabulary::kBos, source.options());
  auto finished = torch::zeros({b}, source.options().dtype(torch::kBool));
  for (int64_t t = 0; t < max_len; ++t) {
    // One model: the argmax of its logits, as it always was (log_softmax could round two close
    // logits into a tie).
    auto scores = models.size() == 1 ? models[0].ptr()->next_logits(out, encoded[0]) : next_log_probs(models, encoded, out);
    auto next = scores.argmax(-1).masked_fill(finished, Vocabulary::kPad);
    out = torch::cat({out, next.unsqueeze(1)}, 1);
    finished = finished.logical_or(next.eq(Vocabulary::kEos));
    if (finished.all().item<bool>()) break;
  }
  return out.narrow(1, 1, out.size(1) - 1);
}

// Beam search by members that all read the same way, in their order.
std::pair<torch::Tensor, torch::Tensor> beam_one_direction(const Ensemble& models, const torch::Tensor& source,
                                                           int64_t max_len, int64_t beam) {
  std::vector<Encoded> encoded = encode_all(models, source);
  const int64_t b = source.size(0), k = beam, rows = b * k;
  // Every word's memory repeated for its k hypotheses: row r belongs to word r / k.
  for (auto& e : encoded) e = e.repeat_rows(k);
  auto opts = source.options();
  auto seqs = torch::full({rows, 1}, Vocabulary::kBos, opts);
  // Only the first hypothesis of each word is live at the start, so the k beams do not start as copies.
  auto scores = torch::full({b, k}, -1e9, source.options().dtype(torch::kFloat));
  scores.select(1, 0).fill_(0);
  auto finished = torch::zeros({rows}, opts.dtype(torch::kBool));
  auto lengths = torch::zeros({rows}, opts.dtype(torch::kFloat));
  const int64_t vocab = models.front()->options().target_vocab;
  for (int64_t t = 0; t < max_len; ++t) {
    auto logp = next_log_probs(models, encoded, seqs);
    // A finished hypothesis may only extend with padding, at no cost, so its score stays put.
    auto frozen = torch::full({vocab}, -1e9, logp.options());
    frozen[Vocabulary::kPad] = 0;
    logp = torch::where(finished.unsqueeze(1), frozen.unsqueeze(0), logp);
    auto candidates = (scores.view({rows, 1}) + logp).view({b, k * vocab});
    auto [top, index] = candidates.topk(k, 1);
    auto from = index.div(vocab, "floor") + torch::arange(b, opts).unsqueeze(1) * k;  // source row
    auto token = index.remainder(vocab);
    from = from.view({rows});
    seqs = torch::cat({seqs.index_select(0, from), token.view({rows, 1})}, 1);
    finished = finished.index_select(0, from);
    lengths = lengths.index_select(0, from) + finished.logical_not().to(torch::kFloat);
    finished = finished.logical_or(token.view({rows}).eq(Vocabulary::kEos));
    scores = top;
    if (finished.all().item<bool>()) break;
  }
  // Length normalization, so short hypotheses do not win only by being short.
  auto normalized = scores / lengths.view({b, k}).clamp_min(1);
  auto [ranked, order] = normalized.sort(/*stable=*/true, 1, /*descending=*/true);  // ties: as argmax
  auto rows_in_order = (order + torch::arange(b, opts).unsqueeze(1) * k).view({rows});
  auto out = seqs.index_select(0, rows_in_order);
  out = out.narrow(1, 1, out.size(1) - 1);
  return {out.view({b, k, out.size(1)}), ranked};
}

// The members of each direction, left to right first; one group when all read the same way.
std::vector<Ensemble> by_direction(const Ensemble& models) {
  if (models.empty()) throw std::invalid_argument("decoding: an ensemble needs at least one model");
  Ensemble forward, backward;
  for (const auto& m : models) (reads_right_to_left(m) ? backward : forward).push_back(m);
  std::vector<Ensemble> groups;
  for (auto* g : {&forward, &backward})
    if (!g->empty()) groups.push_back(std::move(*g));
  return groups;
}

// [N,L] ids -> [N,L] bool: the row's phonemes, what comes before its first EOS or padding.
torch::Tensor phoneme_positions(const torch::Tensor& ids) {
  return ids.eq(Vocabulary::kEos).logical_or(ids.eq(Vocabulary::kPad)).cumsum(1).eq(0);
}

// Each row's phonemes in reverse order, the rest left as it is: a right-to-left model's sequences
// in word order, and back.
torch::Tensor reverse_phonemes(const torch::Tensor& ids) {
  auto length = phoneme_positions(ids).sum(1, /*keepdim=*/true);
  auto t = torch::arange(ids.size(1), ids.options()).unsqueeze(0);
  return ids.gather(1, torch::where(t.lt(length), length - 1 - t, t));
}

torch::Tensor in_word_order(const Ensemble& group, const torch::Tensor& ids) {
  return reads_right_to_left(group.front()) ? reverse_phonemes(ids) : ids;
}

// Pads [N,L] ids with kPad to [N,width].
torch::Tensor pad_columns(const torch::Tensor& ids, int64_t width) {
  if (ids.size(1) >= width) return ids;
  return torch::cat({ids, torch::full({ids.size(0), width - ids.size(1)}, Vocabulary::kPad, ids.options())}, 1);
}

// Mixed directions: each direction's members search together (k hypotheses a word), every
// hypothesis of either is scored by both directions, and the k best by the mean of the two scores
// are kept, each once. A right-to-left model sees a word's end first, so its mistakes are not the
// ones a left-to-right model makes, and each direction vetoes the other's.
std::pair<torch::Tensor, torch::Tensor> rerank_both_directions(const std::vector<Ensemble>& groups,
                                                               const torch::Tensor& source, int64_t max_len,
                                                               int64_t beam) {
  const int64_t b = source.size(0), k = beam;
  std::vector<torch::Tensor> found;
  int64_t width = 1;
  for (const auto& g : groups) {
    auto seqs = k == 1 ? greedy_one_direction(g, source, max_len).unsqueeze(1) : beam_one_direction(g, source, max_len, k).first;
    found.push_back(in_word_order(g, seqs.reshape({b * k, seqs.size(2)})));
    width = std::max(width, seqs.size(2));
  }
  for (auto& f : found) f = pad_columns(f, width).view({b, k, width});
  const int64_t c = k * static_cast<int64_t>(groups.size());
  auto candidates = torch::cat(found, 1);  // [B,C,W]: word w's candidates in row w
  Ensemble all;
  for (const auto& g : groups) all.insert(all.end(), g.begin(), g.end());
  auto scores = sequence_scores(all, source.repeat_interleave(c, 0), candidates.view({b * c, width})).view({b, c});
  // A candidate both directions found counts once: later copies drop to the bottom.
  auto same = candidates.unsqueeze(2).eq(candidates.unsqueeze(1)).all(-1);  // [B,C,C]
  auto earlier = torch::ones({c, c}, same.options()).tril(-1);             // [i][j]: j < i
  auto repeated = same.logical_and(earlier.unsqueeze(0)).any(-1);           // [B,C]
  scores = scores.masked_fill(repeated, -1e9);
  auto [ranked, order] = scores.sort(/*stable=*/true, 1, /*descending=*/true);
  order = order.narrow(1, 0, k);
  auto best = candidates.gather(1, order.unsqueeze(2).expand({b, k, width}));
  return {best, ranked.narrow(1, 0, k)};
}

}  // namespace

bool reads_right_to_left(const G2PTransformer& model) { return model->options().right_to_left; }

torch::Tensor greedy_decode(const Ensemble& models, const torch::Tensor& source, int64_t max_len) {
  auto groups = by_direction(models);
  if (groups.size() == 1) return in_word_order(groups[0], greedy_one_direction(groups[0], source, max_len));
  return rerank_both_directions(groups, source, max_len, 1).first.select(1, 0);
}

torch::Tensor beam_decode(const Ensemble& models, const torch::Tensor& source, int64_t max_len, int64_t beam) {
  if (beam <= 1) return greedy_decode(models, source, max_len);
  return beam_search(models, source, max_len, beam).first.select(1, 0);
}

std::pair<torch::Tensor, torch::Tensor> beam_search(const Ensemble& models, const torch::Tensor& source,
                                                    int64_t max_len, int64_t beam) {
  beam = std::max<int64_t>(beam, 1);
  auto groups = by_direction(models);
  if (groups.size() > 1) return rerank_both_directions(groups, source, max_len, beam);
  auto [seqs, scores] = beam_one_direction(groups[0], source, max_len, beam);
  return {in_word_order(groups[0], seqs.reshape({-1, seqs.size(2)})).view(seqs.sizes()), scores};
}

torch::Tensor teacher_forced_log_probs(const Ensemble& models, const torch::Tensor& source,
                                       const torch::Tensor& target_in) {
  if (by_direction(models).size() > 1)
    throw std::invalid_argument("decoding: teacher forcing needs members that read in the same direction");
  std::vector<torch::Tensor> logits;
  for (G2PTransformer m : models) logits.push_back(m->forward(source, target_in));
  return mean_log_probs(std::move(logits));
}

torch::Tensor sequence_scores(const Ensemble& models, const torch::Tensor& source, const torch::Tensor& phonemes) {
  torch::Tensor total;
  auto groups = by_direction(models);
  for (const auto& g : groups) {
    auto ids = in_word_order(g, phonemes);  // reversing is its own inverse: the group's order
    auto real = phoneme_positions(ids);
    ids = ids.masked_fill(real.logical_not(), Vocabulary::kPad);
    auto length = real.sum(1, /*keepdim=*/true);
    auto column = [&](int64_t id) { return torch::full({ids.size(0), 1}, id, ids.options()); };
    auto target_in = torch::cat({column(Vocabulary::kBos), ids}, 1);
    auto target_out = torch::cat({ids, column(Vocabulary::kPad)}, 1).scatter(1, length, Vocabulary::kEos);
    auto lp = teacher_forced_log_probs(g, source, target_in).gather(2, target_out.unsqueeze(2)).squeeze(2);
    auto counted = target_out.ne(Vocabulary::kPad);
    auto score = lp.masked_fill(counted.logical_not(), 0).sum(1) / counted.sum(1).to(torch::kFloat);
    total = total.defined() ? total + score : score;
  }
  return total / static_cast<double>(groups.size());
}

}  // namespace resumable
