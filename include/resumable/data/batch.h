// The corpus as model ids, and the padded tensors of one batch.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "resumable/data/cmudict.h"
#include "resumable/data/vocabulary.h"

namespace resumable {

struct EncodedExample {
  std::vector<int64_t> source;  // grapheme ids
  std::vector<int64_t> target;  // phoneme ids, without BOS/EOS
};

struct EncodedCorpus {
  Vocabulary graphemes;
  Vocabulary phonemes;
  std::vector<EncodedExample> train;
  std::vector<std::vector<int64_t>> validation_sources, test_sources;
  const G2PCorpus* corpus = nullptr;  // the words and references behind the ids

  // Per training sample: the size measure used for length bucketing.
  std::vector<int64_t> train_lengths() const;
  // Target tokens a sample contributes to the loss (its phonemes + EOS).
  static int64_t target_tokens(const EncodedExample& e) { return static_cast<int64_t>(e.target.size()) + 1; }
};

// With `right_to_left`, training targets hold each pronunciation last phoneme first.
EncodedCorpus encode_corpus(const G2PCorpus& corpus, Vocabulary graphemes, Vocabulary phonemes,
                            bool right_to_left = false);

struct Batch {
  at::Tensor source;      // [B,S] int64, padded with kPad
  at::Tensor target_in;   // [B,T] BOS + phonemes, padded
  at::Tensor target_out;  // [B,T] phonemes + EOS, padded
  at::Tensor weight;      // [B] float: 1 for real samples, 0 for a rank's placeholder
  // Flat positions b*L+t of the real tokens of source and target_in, row-major: the packing the
  // model trains on, known here on the CPU so that a GPU never waits to find them (nonzero()).
  at::Tensor source_tokens, target_tokens;  // [Ns], [Nt] int64
  double tokens = 0;      // weighted count of target tokens
};

// `weights[i]` scales sample i's loss; 0 marks a placeholder that keeps an idle rank in step.
Batch collate(const std::vector<const EncodedExample*>& examples, const std::vector<float>& weights,
              const c10::Device& device);
// One rank's part of a global batch, collated: every world_size-th sample from `rank`
// (DistributedSampler::rank_share), or, when the batch has fewer samples than ranks, its first
// sample with weight 0, so that the rank still joins the gradient allreduce.
Batch collate_rank_share(const EncodedCorpus& data, const std::vector<int64_t>& global_batch, int rank,
                         int world_size, const c10::Device& device);
// Padded [B,S] sources for decoding.
at::Tensor collate_sources(const std::vector<const std::vector<int64_t>*>& sources, const c10::Device& device);

}  // namespace resumable
