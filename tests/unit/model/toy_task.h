// A small model and a synthetic task for the model and decoding tests.
#pragma once

#include <tuple>

#include <torch/torch.h>

#include "resumable/data/vocabulary.h"
#include "resumable/model/model.h"

namespace resumable {

inline ModelOptions small() {
  ModelOptions o;
  o.source_vocab = 12;
  o.target_vocab = 9;
  o.d_model = 16;
  o.heads = 2;
  o.encoder_layers = 1;
  o.decoder_layers = 2;
  o.ff_dim = 32;
  o.dropout = 0.1;
  return o;
}
// A synthetic task: the target is the source (reversed if asked), then EOS.
inline std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> task_batch(int64_t n, bool reverse) {
  auto src = torch::randint(4, 9, {n, 4}, torch::kLong);
  auto target = reverse ? src.flip(1) : src;
  auto out = torch::cat({target, torch::full({n, 1}, Vocabulary::kEos, torch::kLong)}, 1);
  auto in = torch::cat({torch::full({n, 1}, Vocabulary::kBos, torch::kLong), target}, 1);
  return {src, in, out};
}

inline G2PTransformer train_on_task(uint64_t seed, int steps, bool reverse) {
  torch::manual_seed(seed);
  ModelOptions o = small();
  o.dropout = 0;
  G2PTransformer m(o);
  torch::optim::AdamW opt(m->parameters(), torch::optim::AdamWOptions(3e-3));
  for (int step = 0; step < steps; ++step) {
    auto [src, in, out] = task_batch(32, reverse);
    opt.zero_grad();
    torch::nn::functional::cross_entropy(m->forward(src, in).reshape({-1, 9}), out.reshape({-1})).backward();
    opt.step();
  }
  m->eval();
  return m;
}

}  // namespace resumable
