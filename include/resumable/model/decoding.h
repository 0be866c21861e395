// Decoding words into phonemes with one model or an ensemble of them. An ensemble averages its
// members' next-phoneme probabilities at every step (as fairseq's EnsembleModel does), so members
// may differ in architecture and training but must share the vocabularies. With one member every
// function here computes exactly what that model alone gives.
// A model may read phonemes right to left (config target_order); what these functions take and
// return is always in word order. When an ensemble holds both directions, each direction's members
// search together and both directions rescore all the hypotheses (rerank_both_directions in
// decoding.cpp, as Marian and Edinburgh's WMT systems rerank with right-to-left models).
#pragma once

#include <utility>
#include <vector>

#include "resumable/model/model.h"

namespace resumable {

using Ensemble = std::vector<G2PTransformer>;

// Greedy decoding: [B,S] -> [B,L] phoneme ids, each row ending in EOS or cut at max_len.
torch::Tensor greedy_decode(const Ensemble& models, const torch::Tensor& source, int64_t max_len);
// Beam search with `beam` hypotheses per word, ranked by length-normalized log-probability;
// returns the best, shaped like greedy_decode(). beam == 1 is greedy decoding.
torch::Tensor beam_decode(const Ensemble& models, const torch::Tensor& source, int64_t max_len, int64_t beam);
// All `beam` hypotheses of every word, best first: sequences [B,beam,L] and their mean
// log-probability per phoneme (EOS included) [B,beam]. beam == 1 follows greedy decoding.
std::pair<torch::Tensor, torch::Tensor> beam_search(const Ensemble& models, const torch::Tensor& source,
                                                    int64_t max_len, int64_t beam);
// Teacher forcing: the log-probability [B,T,V] (float) of every phoneme after each prefix of
// target_in (which starts with BOS), in the models' own order; all must read the same way.
torch::Tensor teacher_forced_log_probs(const Ensemble& models, const torch::Tensor& source,
                                       const torch::Tensor& target_in);
// The score beam_search() ranks by, of given pronunciations: phonemes [B,L] in word order (ending
// at EOS or padding) -> [B] mean log-probability per phoneme, EOS included; with both directions,
// the mean of the two directions' scores.
torch::Tensor sequence_scores(const Ensemble& models, const torch::Tensor& source, const torch::Tensor& phonemes);
bool reads_right_to_left(const G2PTransformer& model);

}  // namespace resumable
