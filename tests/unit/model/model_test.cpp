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

TEST(TokenPacking, PadsIntoHeadMajorLayoutAndPacksBackWithTheirGradients) {
  torch::manual_seed(3);
  const int64_t pad = Vocabulary::kPad, groups = 2, heads = 3, d = 4;
  auto ids = torch::tensor(std::vector<int64_t>{5, 6, 7, pad, 8, pad, pad, pad, 9, 10, 11, 12}, torch::kLong).view({3, 4});
  auto packing = TokenPacking::of(ids);
  const int64_t n = packing.index.size(0);
  ASSERT_EQ(n, 8);
  auto rows = torch::randn({n, groups * heads * d}, torch::dtype(torch::kDouble).requires_grad(true));

  // What attention reads: [G,B,H,L,D], laid out so (the batched matmuls need no copy), zeros at padding.
  auto heads_out = packing.pad_heads(rows, groups, heads);
  EXPECT_TRUE(heads_out.is_contiguous());
  ASSERT_EQ(heads_out.sizes(), (std::vector<int64_t>{groups, 3, heads, 4, d}));
  auto reference = torch::zeros({3 * 4, groups * heads * d}, rows.options())
                       .index_copy(0, packing.index, rows)
                       .view({3, 4, groups, heads, d})
                       .permute({2, 0, 3, 1, 4});
  EXPECT_TRUE(torch::equal(heads_out, reference));

  // And back: [B,H,L,D] to rows, the inverse on real positions, whatever the input's strides.
  for (auto y : {heads_out[1], heads_out[1].transpose(1, 2).contiguous().transpose(1, 2)}) {
    auto packed = packing.pack_heads(y);
    ASSERT_EQ(packed.sizes(), (std::vector<int64_t>{n, heads * d}));
    EXPECT_TRUE(torch::equal(packed, rows.detach().view({n, groups, heads * d}).select(1, 1)));
  }

  // Gradients as the plain index_copy / index_select formulation gives them.
  auto weight = torch::randn({n, heads * d}, rows.options());
  auto through = [&](bool head_major) {
    rows.mutable_grad() = torch::Tensor();
    auto kv = head_major ? packing.pad_heads(rows, groups, heads)
                         : torch::zeros({3 * 4, groups * heads * d}, rows.options())
                               .index_copy(0, packing.index, rows)
                               .view({3, 4, groups, heads, d})
                               .permute({2, 0, 3, 1, 4});
    auto y = kv[0] * 2 + kv[1].pow(2);  // [B,H,L,D]
    auto out = head_major ? packing.pack_heads(y)
                          : y.transpose(1, 2).reshape({3 * 4, heads * d}).index_select(0, packing.index);
    (out * weight).sum().backward();
    return rows.grad().clone();
  };
  EXPECT_TRUE(torch::equal(through(true), through(false)));
}
