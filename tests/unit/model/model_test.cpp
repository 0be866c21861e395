#include "resumable/model/model.h"
#include "resumable/data/vocabulary.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

using namespace resumable;

namespace {
ModelOptions small() {
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
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> task_batch(int64_t n, bool reverse) {
  auto src = torch::randint(4, 9, {n, 4}, torch::kLong);
  auto target = reverse ? src.flip(1) : src;
  auto out = torch::cat({target, torch::full({n, 1}, Vocabulary::kEos, torch::kLong)}, 1);
  auto in = torch::cat({torch::full({n, 1}, Vocabulary::kBos, torch::kLong), target}, 1);
  return {src, in, out};
}

G2PTransformer train_on_task(uint64_t seed, int steps, bool reverse) {
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

}  // namespace

TEST(G2PTransformer, ForwardShapesAndStableParameterNames) {
  torch::manual_seed(0);
  G2PTransformer m(small());
  auto src = torch::randint(4, 12, {3, 5}, torch::kLong);
  auto tgt = torch::randint(4, 9, {3, 4}, torch::kLong);
  EXPECT_EQ(m->forward(src, tgt).sizes(), (std::vector<int64_t>{3, 4, 9}));
  auto names = m->named_parameters().keys();
  EXPECT_EQ(names.front(), "source_embedding.weight");
  EXPECT_NE(std::find(names.begin(), names.end(), "decoder.1.cross_attention.kv.weight"), names.end());
}

TEST(G2PTransformer, SameSeedSameWeightsAndEvalIsDeterministic) {
  torch::manual_seed(5);
  G2PTransformer a(small());
  torch::manual_seed(5);
  G2PTransformer b(small());
  for (const auto& p : a->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), b->named_parameters()[p.key()]));
  a->eval();
  auto src = torch::randint(4, 12, {2, 6}, torch::kLong);
  auto tgt = torch::randint(4, 9, {2, 3}, torch::kLong);
  EXPECT_TRUE(torch::equal(a->forward(src, tgt), a->forward(src, tgt)));
}

TEST(G2PTransformer, PaddingDoesNotChangeTheOutput) {
  torch::manual_seed(1);
  G2PTransformer m(small());
  m->eval();
  auto row = [](std::vector<int64_t> v) { return torch::tensor(v, torch::kLong).unsqueeze(0); };
  auto src = row({5, 6, 7});
  auto padded = row({5, 6, 7, Vocabulary::kPad, Vocabulary::kPad});
  auto tgt = row({Vocabulary::kBos, 4, 5});
  EXPECT_TRUE(torch::allclose(m->forward(src, tgt), m->forward(padded, tgt), 1e-5, 1e-6));
}

TEST(G2PTransformer, PackedForwardEqualsPaddedForwardAndItsGradients) {
  torch::manual_seed(2);
  ModelOptions o = small();
  o.dropout = 0;
  G2PTransformer m(o);
  const int64_t pad = Vocabulary::kPad, bos = Vocabulary::kBos, eos = Vocabulary::kEos;
  auto src = torch::tensor(std::vector<int64_t>{5, 6, 7, 8, 9, 6, pad, pad, pad, pad, 10, 11, 4, pad, pad}, torch::kLong).view({3, 5});
  auto in = torch::tensor(std::vector<int64_t>{bos, 4, 5, 6, bos, 7, pad, pad, bos, 8, 4, pad}, torch::kLong).view({3, 4});
  auto out = torch::tensor(std::vector<int64_t>{4, 5, 6, eos, 7, eos, pad, pad, 8, 4, eos, pad}, torch::kLong).view({3, 4});

  auto padded = m->forward(src, in);
  auto packed = m->forward_packed(src, in);
  ASSERT_EQ(packed.logits.size(0), 9);
  // The positions given (as collate() finds them on the CPU) or found here: the same logits.
  auto given = m->forward_packed(src, in, src.reshape({-1}).ne(pad).nonzero().squeeze(1),
                                 in.reshape({-1}).ne(pad).nonzero().squeeze(1));
  EXPECT_TRUE(torch::equal(given.logits, packed.logits));
  EXPECT_TRUE(torch::equal(packed.index, in.reshape({-1}).ne(pad).nonzero().squeeze(1)));
  auto expected = padded.reshape({-1, 9}).index_select(0, packed.index);
  EXPECT_TRUE(torch::allclose(packed.logits, expected, 1e-5, 1e-6)) << (packed.logits - expected).abs().max();

  auto grads = [&](const torch::Tensor& loss) {
    m->zero_grad();
    loss.backward();
    std::vector<torch::Tensor> g;
    for (auto& p : m->parameters()) g.push_back(p.grad().clone());
    return g;
  };
  namespace F = torch::nn::functional;
  auto g_padded = grads(F::cross_entropy(m->forward(src, in).reshape({-1, 9}), out.reshape({-1}),
                                         F::CrossEntropyFuncOptions().ignore_index(pad).reduction(torch::kSum)));
  auto p2 = m->forward_packed(src, in);
  auto g_packed = grads(F::cross_entropy(p2.logits, out.reshape({-1}).index_select(0, p2.index),
                                         F::CrossEntropyFuncOptions().reduction(torch::kSum)));
  ASSERT_EQ(g_padded.size(), g_packed.size());
  for (size_t i = 0; i < g_padded.size(); ++i)
    EXPECT_TRUE(torch::allclose(g_packed[i], g_padded[i], 1e-4, 1e-5)) << "parameter " << i;
}

TEST(G2PTransformer, LearnsACopyTaskAndGreedyDecodesIt) {
  // A real learning check: each source symbol maps to a fixed target symbol.
  G2PTransformer m = train_on_task(3, 300, /*reverse=*/false);
  torch::NoGradGuard g;
  auto [src, in, out] = task_batch(16, false);
  auto decoded = m->greedy_decode(src, 8);
  ASSERT_GE(decoded.size(1), 5);
  EXPECT_TRUE(torch::equal(decoded.narrow(1, 0, 5), out)) << decoded << out;
  auto beamed = m->beam_decode(src, 8, 3);
  ASSERT_GE(beamed.size(1), 5);
  EXPECT_TRUE(torch::equal(beamed.narrow(1, 0, 5), out)) << beamed << out;
  EXPECT_TRUE(torch::equal(m->beam_decode(src, 8, 1), decoded));
}

TEST(G2PTransformer, BeamSearchFindsMoreLikelyOutputsThanGreedy) {
  // A half-trained model is uncertain, which is where greedy decoding goes wrong.
  G2PTransformer m = train_on_task(11, 40, /*reverse=*/true);
  torch::NoGradGuard g;
  auto src = torch::randint(4, 12, {32, 5}, torch::kLong);
  // Length-normalized log-probability of each row's output up to and including its EOS.
  auto score = [&](const torch::Tensor& ids) {
    auto in = torch::cat({torch::full({ids.size(0), 1}, Vocabulary::kBos, torch::kLong), ids.narrow(1, 0, ids.size(1) - 1)}, 1);
    auto logp = torch::log_softmax(m->forward(src, in), -1).gather(2, ids.unsqueeze(2)).squeeze(2);
    std::vector<double> out;
    for (int64_t r = 0; r < ids.size(0); ++r) {
      double total = 0;
      int64_t n = 0;
      for (int64_t t = 0; t < ids.size(1); ++t) {
        total += logp[r][t].item<double>();
        ++n;
        if (ids[r][t].item<int64_t>() == Vocabulary::kEos) break;
      }
      out.push_back(total / n);
    }
    return out;
  };
  const int64_t len = 8;
  auto pad_to = [&](torch::Tensor t) {
    return t.size(1) >= len ? t : torch::cat({t, torch::full({t.size(0), len - t.size(1)}, Vocabulary::kPad, torch::kLong)}, 1);
  };
  auto greedy = pad_to(m->greedy_decode(src, len)), beam = pad_to(m->beam_decode(src, len, 5));
  auto gs = score(greedy), bs = score(beam);
  double g_total = 0, b_total = 0;
  int differ = 0;
  for (size_t r = 0; r < gs.size(); ++r) {
    g_total += gs[r];
    b_total += bs[r];
    differ += torch::equal(greedy[r], beam[r]) ? 0 : 1;
  }
  EXPECT_GT(differ, 0) << "beam search never left the greedy path";
  // A heuristic, not a per-word guarantee; over the rows it must find the likelier outputs.
  EXPECT_GT(b_total, g_total);
}
