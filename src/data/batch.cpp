#include "resumable/data/batch.h"

#include "resumable/data/distributed_sampler.h"

#include <algorithm>

namespace resumable {

std::vector<int64_t> EncodedCorpus::train_lengths() const {
  std::vector<int64_t> out;
  out.reserve(train.size());
  // Source length dominates; target length breaks ties so buckets also share target lengths.
  for (const auto& e : train) out.push_back(static_cast<int64_t>(e.source.size()) * 64 + static_cast<int64_t>(e.target.size()));
  return out;
}

EncodedCorpus encode_corpus(const G2PCorpus& corpus, Vocabulary graphemes, Vocabulary phonemes, bool right_to_left) {
  EncodedCorpus out;
  out.graphemes = std::move(graphemes);
  out.phonemes = std::move(phonemes);
  out.corpus = &corpus;
  out.train.reserve(corpus.train.size());
  for (const auto& ex : corpus.train) {
    out.train.push_back({out.graphemes.encode(graphemes_of(ex.word)), out.phonemes.encode(ex.phonemes)});
    if (right_to_left) std::reverse(out.train.back().target.begin(), out.train.back().target.end());
  }
  for (const auto& w : corpus.validation) out.validation_sources.push_back(out.graphemes.encode(graphemes_of(w.word)));
  for (const auto& w : corpus.test) out.test_sources.push_back(out.graphemes.encode(graphemes_of(w.word)));
  return out;
}

Batch collate(const std::vector<const EncodedExample*>& examples, const std::vector<float>& weights,
              const c10::Device& device) {
  const int64_t b = static_cast<int64_t>(examples.size());
  size_t s = 1, t = 1;
  for (const auto* e : examples) {
    s = std::max(s, e->source.size());
    t = std::max(t, e->target.size() + 1);
  }
  auto src = at::full({b, static_cast<int64_t>(s)}, Vocabulary::kPad, at::kLong);
  auto tin = at::full({b, static_cast<int64_t>(t)}, Vocabulary::kPad, at::kLong);
  auto tout = at::full({b, static_cast<int64_t>(t)}, Vocabulary::kPad, at::kLong);
  auto w = at::empty({b}, at::kFloat);
  auto* ps = src.data_ptr<int64_t>();
  auto* pi = tin.data_ptr<int64_t>();
  auto* po = tout.data_ptr<int64_t>();
  Batch batch;
  std::vector<int64_t> source_tokens, target_tokens;
  for (int64_t i = 0; i < b; ++i) {
    const auto& e = *examples[i];
    for (size_t k = 0; k < e.source.size(); ++k) source_tokens.push_back(i * static_cast<int64_t>(s) + static_cast<int64_t>(k));
    for (size_t k = 0; k <= e.target.size(); ++k) target_tokens.push_back(i * static_cast<int64_t>(t) + static_cast<int64_t>(k));
    std::copy(e.source.begin(), e.source.end(), ps + i * s);
    pi[i * t] = Vocabulary::kBos;
    std::copy(e.target.begin(), e.target.end(), pi + i * t + 1);
    std::copy(e.target.begin(), e.target.end(), po + i * t);
    po[i * t + e.target.size()] = Vocabulary::kEos;
    w.data_ptr<float>()[i] = weights[i];
    batch.tokens += weights[i] * static_cast<double>(EncodedCorpus::target_tokens(e));
  }
  batch.source = src.to(device);
  batch.target_in = tin.to(device);
  batch.target_out = tout.to(device);
  batch.weight = w.to(device);
  batch.source_tokens = at::tensor(source_tokens, at::kLong).to(device);
  batch.target_tokens = at::tensor(target_tokens, at::kLong).to(device);
  return batch;
}

Batch collate_rank_share(const EncodedCorpus& data, const std::vector<int64_t>& global_batch, int rank,
                         int world_size, const c10::Device& device) {
  std::vector<const EncodedExample*> examples;
  std::vector<float> weights;
  for (int64_t i : DistributedSampler::rank_share(global_batch, rank, world_size)) {
    examples.push_back(&data.train[static_cast<size_t>(i)]);
    weights.push_back(1.0f);
  }
  if (examples.empty()) {
    examples.push_back(&data.train[static_cast<size_t>(global_batch.front())]);
    weights.push_back(0.0f);
  }
  return collate(examples, weights, device);
}

at::Tensor collate_sources(const std::vector<const std::vector<int64_t>*>& sources, const c10::Device& device) {
  size_t s = 1;
  for (const auto* src : sources) s = std::max(s, src->size());
  auto out = at::full({static_cast<int64_t>(sources.size()), static_cast<int64_t>(s)}, Vocabulary::kPad, at::kLong);
  auto* p = out.data_ptr<int64_t>();
  for (size_t i = 0; i < sources.size(); ++i) std::copy(sources[i]->begin(), sources[i]->end(), p + i * s);
  return out.to(device);
}

}  // namespace resumable
