#include "resumable/training/evaluator.h"

#include <algorithm>
#include <numeric>

#include "resumable/distributed/distributed.h"
#include "resumable/util/edit_distance.h"

namespace resumable {

TeacherForcedLoss teacher_forced_loss(G2PTransformer& model, const Batch& batch) {
  TeacherForcedLoss out;
  out.logits = model->forward(batch.source, batch.target_in).to(at::kFloat);
  auto nll = torch::nn::functional::cross_entropy(
      out.logits.reshape({-1, out.logits.size(-1)}), batch.target_out.reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(Vocabulary::kPad).reduction(torch::kSum));
  out.sum = nll.item<double>();
  out.tokens = batch.target_out.ne(Vocabulary::kPad).sum().item<int64_t>();
  return out;
}

TeacherForcedLoss teacher_forced_loss(const Ensemble& models, const Batch& batch) {
  if (models.size() == 1) {
    G2PTransformer model = models.front();
    return teacher_forced_loss(model, batch);
  }
  TeacherForcedLoss out;
  out.logits = teacher_forced_log_probs(models, batch.source, batch.target_in);
  auto nll = torch::nn::functional::nll_loss(
      out.logits.reshape({-1, out.logits.size(-1)}), batch.target_out.reshape({-1}),
      torch::nn::functional::NLLLossFuncOptions().ignore_index(Vocabulary::kPad).reduction(torch::kSum));
  out.sum = nll.item<double>();
  out.tokens = batch.target_out.ne(Vocabulary::kPad).sum().item<int64_t>();
  return out;
}

Evaluator::Evaluator(const EncodedCorpus& data, Distributed& dist, c10::Device device)
    : data_(data), dist_(dist), device_(device) {}

std::optional<EvalResult> Evaluator::evaluate(const Ensemble& models, Split split, const EvalOptions& options,
                                              const std::function<bool()>& stop) {
  const auto& words = split == Split::kTest ? data_.corpus->test : data_.corpus->validation;
  const auto& sources = split == Split::kTest ? data_.test_sources : data_.validation_sources;
  size_t n = words.size();
  if (options.limit > 0) n = std::min(n, static_cast<size_t>(options.limit));

  // This rank's words, sorted by length so batches carry little padding.
  std::vector<size_t> mine;
  for (size_t i = static_cast<size_t>(dist_.rank()); i < n; i += static_cast<size_t>(dist_.world_size())) mine.push_back(i);
  std::stable_sort(mine.begin(), mine.end(), [&](size_t a, size_t b) { return sources[a].size() < sources[b].size(); });

  for (G2PTransformer m : models) m->eval();
  // Loss and token accuracy are teacher-forced, which only members that read the way the first
  // one does can share: with both directions in the ensemble they are those members'.
  Ensemble forced;
  for (const auto& m : models)
    if (reads_right_to_left(m) == reads_right_to_left(models.front())) forced.push_back(m);
  const bool reverse = reads_right_to_left(models.front());
  torch::NoGradGuard no_grad;
  double loss_sum = 0, tokens = 0, correct = 0;
  ErrorCounts errors;
  // Ranks hold ceil or floor(n / world) words; all run as many rounds as the largest share, so
  // that the per-batch stop agreement pairs up.
  const size_t bs = static_cast<size_t>(options.batch_size);
  const size_t most = (n + static_cast<size_t>(dist_.world_size()) - 1) / static_cast<size_t>(dist_.world_size());
  const size_t rounds = (most + bs - 1) / bs;
  for (size_t round = 0; round < rounds; ++round) {
    if (stop) {
      at::Tensor flag = at::tensor({stop() ? 1.0 : 0.0}, at::kDouble);
      dist_.all_reduce_sum(flag);
      if (flag.item<double>() > 0) return std::nullopt;
    }
    size_t start = round * bs;
    if (start >= mine.size()) continue;
    size_t end = std::min(mine.size(), start + bs);
    // Teacher forcing against each word's first pronunciation.
    std::vector<EncodedExample> examples;
    for (size_t k = start; k < end; ++k) {
      examples.push_back({sources[mine[k]], data_.phonemes.encode(words[mine[k]].pronunciations.front())});
      if (reverse) std::reverse(examples.back().target.begin(), examples.back().target.end());
    }
    std::vector<const EncodedExample*> ptrs;
    for (const auto& e : examples) ptrs.push_back(&e);
    Batch batch = collate(ptrs, std::vector<float>(ptrs.size(), 1.0f), device_);
    TeacherForcedLoss loss = teacher_forced_loss(forced, batch);
    loss_sum += loss.sum;
    tokens += static_cast<double>(loss.tokens);
    auto mask = batch.target_out.ne(Vocabulary::kPad);
    correct += loss.logits.argmax(-1).eq(batch.target_out).logical_and(mask).sum().item<double>();

    // Decoding (in word order whatever the members' directions), scored against every
    // pronunciation of the word.
    int64_t max_len = batch.source.size(1) + 8;
    auto decoded = beam_decode(models, batch.source, max_len, options.beam).to(at::kCPU).contiguous();
    for (size_t k = start; k < end; ++k) {
      auto row = decoded[static_cast<int64_t>(k - start)];
      std::vector<int64_t> ids(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
      errors.add(data_.phonemes.decode(ids), words[mine[k]].pronunciations);
    }
  }
  at::Tensor totals = at::tensor({loss_sum, tokens, correct, errors.words, errors.word_errors, errors.phoneme_edits,
                                  errors.reference_phonemes},
                                 at::kDouble);
  dist_.all_reduce_sum(totals);
  auto t = totals.accessor<double, 1>();
  EvalResult r;
  r.loss = t[1] > 0 ? t[0] / t[1] : 0;
  r.token_acc = t[1] > 0 ? t[2] / t[1] : 0;
  ErrorCounts all;
  all.words = t[3];
  all.word_errors = t[4];
  all.phoneme_edits = t[5];
  all.reference_phonemes = t[6];
  r.wer = all.wer();
  r.per = all.per();
  r.words = all.words;
  return r;
}

}  // namespace resumable
