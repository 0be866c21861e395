#include "resumable/model/model.h"
#include "resumable/data/vocabulary.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "toy_task.h"

using namespace resumable;

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
