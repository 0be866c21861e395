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

}  // namespace

torch::Tensor greedy_decode(const Ensemble& models, const torch::Tensor& source, int64_t max_len) {
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

torch::Tensor beam_decode(const Ensemble& models, const torch::Tensor& source, int64_t max_len, int64_t beam) {
  if (beam <= 1) return greedy_decode(models, source, max_len);
  return beam_search(models, source, max_len, beam).first.select(1, 0);
}

std::pair<torch::Tensor, torch::Tensor> beam_search(const Ensemble& models, const torch::Tensor& source,
                                                    int64_t max_len, int64_t beam) {
  beam = std::max<int64_t>(beam, 1);
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

torch::Tensor teacher_forced_log_probs(const Ensemble& models, const torch::Tensor& source,
                                       const torch::Tensor& target_in) {
  if (models.empty()) throw std::invalid_argument("decoding: an ensemble needs at least one model");
  std::vector<torch::Tensor> logits;
  for (G2PTransformer m : models) logits.push_back(m->forward(source, target_in));
  return mean_log_probs(std::move(logits));
}

}  // namespace resumable
