#include "resumable/model/decoding.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "toy_task.h"

using namespace resumable;

TEST(Decoding, LearnsACopyTaskAndGreedyDecodesIt) {
  // A real learning check: each source symbol maps to a fixed target symbol.
  G2PTransformer m = train_on_task(3, 300, /*reverse=*/false);
  torch::NoGradGuard g;
  auto [src, in, out] = task_batch(16, false);
  auto decoded = greedy_decode({m}, src, 8);
  ASSERT_GE(decoded.size(1), 5);
  EXPECT_TRUE(torch::equal(decoded.narrow(1, 0, 5), out)) << decoded << out;
  auto beamed = beam_decode({m}, src, 8, 3);
  ASSERT_GE(beamed.size(1), 5);
  EXPECT_TRUE(torch::equal(beamed.narrow(1, 0, 5), out)) << beamed << out;
  EXPECT_TRUE(torch::equal(beam_decode({m}, src, 8, 1), decoded));
}

TEST(Decoding, BeamSearchFindsMoreLikelyOutputsThanGreedy) {
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
  auto greedy = pad_to(greedy_decode({m}, src, len)), beam = pad_to(beam_decode({m}, src, len, 5));
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

TEST(Decoding, AnEnsembleAveragesItsMembersProbabilities) {
  torch::manual_seed(5);
  G2PTransformer a(small()), b(small());
  a->eval();
  b->eval();
  torch::NoGradGuard g;
  auto [src, in, out] = task_batch(6, false);
  auto p = teacher_forced_log_probs({a, b}, src, in).exp();
  auto expected = (torch::softmax(a->forward(src, in), -1) + torch::softmax(b->forward(src, in), -1)) / 2;
  EXPECT_TRUE(torch::allclose(p, expected, 1e-5, 1e-6)) << (p - expected).abs().max();
  // One member: its own log-probabilities, exactly.
  EXPECT_TRUE(torch::equal(teacher_forced_log_probs({a}, src, in), torch::log_softmax(a->forward(src, in), -1)));
}

TEST(Decoding, AModelTwiceDecodesAsTheModelAlone) {
  G2PTransformer m = train_on_task(11, 40, /*reverse=*/true);
  torch::NoGradGuard g;
  auto src = torch::randint(4, 12, {32, 5}, torch::kLong);
  EXPECT_TRUE(torch::equal(greedy_decode({m, m}, src, 8), greedy_decode({m}, src, 8)));
  auto [one, one_scores] = beam_search({m}, src, 8, 4);
  auto [two, two_scores] = beam_search({m, m}, src, 8, 4);
  EXPECT_TRUE(torch::equal(one, two));
  EXPECT_TRUE(torch::allclose(one_scores, two_scores, 1e-5, 1e-5));
}

TEST(Decoding, AnEnsembleOfHalfTrainedModelsGetsMoreWordsRightThanItsMembers) {
  // Three runs of the reverse task, stopped early with different seeds: each is wrong on many
  // rows, and not on the same ones, which is what an ensemble gains from.
  Ensemble members = {train_on_task(21, 60, true), train_on_task(22, 60, true), train_on_task(23, 60, true)};
  torch::NoGradGuard g;
  torch::manual_seed(99);
  auto [src, in, out] = task_batch(256, true);
  auto right = [&](const Ensemble& models) {
    auto d = greedy_decode(models, src, 6);
    return d.size(1) < 5 ? 0 : d.narrow(1, 0, 5).eq(out).all(1).sum().item<int64_t>();
  };
  int64_t best_member = 0;
  for (const auto& m : members) best_member = std::max(best_member, right({m}));
  const int64_t ensemble = right(members);
  RecordProperty("best_member_right", static_cast<int>(best_member));
  RecordProperty("ensemble_right", static_cast<int>(ensemble));
  EXPECT_LT(best_member, 256 * 9 / 10) << "the members are meant to be half-trained";
  EXPECT_GT(ensemble, best_member) << "of 256 rows";
}

namespace {

// The same weights, read right to left: what the model emits first is the word's last phoneme.
G2PTransformer reading_right_to_left(const G2PTransformer& m) {
  ModelOptions o = m->options();
  o.right_to_left = true;
  G2PTransformer r(o);
  torch::NoGradGuard g;
  auto from = m->named_parameters();
  for (auto& p : r->named_parameters()) p.value().copy_(from[p.key()]);
  r->eval();
  return r;
}

}  // namespace

TEST(Decoding, ARightToLeftModelDecodesAndScoresInWordOrder) {
  // Trained to emit the source reversed; read right to left, that is the source itself.
  G2PTransformer r = reading_right_to_left(train_on_task(3, 300, /*reverse=*/true));
  G2PTransformer l = train_on_task(4, 10, false);
  torch::NoGradGuard g;
  auto [src, in, out] = task_batch(16, /*reverse=*/false);
  auto decoded = greedy_decode({r}, src, 8);
  ASSERT_GE(decoded.size(1), 5);
  EXPECT_TRUE(torch::equal(decoded.narrow(1, 0, 5), out)) << decoded << out;
  auto [seqs, scores] = beam_search({r}, src, 8, 3);
  EXPECT_TRUE(torch::equal(seqs.select(1, 0).narrow(1, 0, 5), out)) << seqs;
  // Scoring takes word order too, and agrees with the search's own scores.
  auto rescored = sequence_scores({r}, src.repeat_interleave(3, 0), seqs.reshape({48, seqs.size(2)}));
  EXPECT_TRUE(torch::allclose(rescored.view({16, 3}), scores, 1e-4, 1e-5)) << rescored << scores;
  // Members that read in opposite directions can't share teacher forcing.
  EXPECT_THROW(teacher_forced_log_probs({l, r}, src, in), std::invalid_argument);
}

TEST(Decoding, BothDirectionsRerankEachOthersHypotheses) {
  // Half-trained on the copy task, one reading left to right, one right to left.
  G2PTransformer l = train_on_task(31, 60, /*reverse=*/false);
  G2PTransformer r = reading_right_to_left(train_on_task(32, 60, /*reverse=*/true));
  torch::NoGradGuard g;
  torch::manual_seed(7);
  auto [src, in, out] = task_batch(64, false);
  const int64_t k = 4;
  auto [seqs, scores] = beam_search({l, r}, src, 6, k);
  ASSERT_EQ(seqs.size(1), k);
  const int64_t width = seqs.size(2);
  // The scores are the two directions' mean score of each hypothesis, best first, each once.
  auto both = sequence_scores({l, r}, src.repeat_interleave(k, 0), seqs.reshape({64 * k, width})).view({64, k});
  auto alone = (sequence_scores({l}, src.repeat_interleave(k, 0), seqs.reshape({64 * k, width})) +
                sequence_scores({r}, src.repeat_interleave(k, 0), seqs.reshape({64 * k, width}))) / 2;
  EXPECT_TRUE(torch::allclose(both, scores, 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(alone.view({64, k}), scores, 1e-4, 1e-5));
  EXPECT_TRUE(torch::equal(scores, std::get<0>(scores.sort(1, /*descending=*/true))));
  for (int64_t w = 0; w < 64; ++w)
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < i; ++j) EXPECT_FALSE(torch::equal(seqs[w][i], seqs[w][j])) << "word " << w;
  // Each direction's own best hypothesis was a candidate: the pick scores at least as well.
  for (const auto& m : {l, r}) {
    auto own = beam_search({m}, src, 6, k).first.select(1, 0);
    auto own_score = sequence_scores({l, r}, src, own);
    EXPECT_TRUE(scores.select(1, 0).ge(own_score - 1e-5).all().item<bool>());
  }
  // And greedy decoding with both is the better of the two greedy outputs by the same measure.
  auto gl = greedy_decode({l}, src, 6), gr = greedy_decode({r}, src, 6), gb = greedy_decode({l, r}, src, 6);
  auto pad = [](torch::Tensor t, int64_t n) {
    return t.size(1) >= n ? t : torch::cat({t, torch::full({t.size(0), n - t.size(1)}, Vocabulary::kPad, torch::kLong)}, 1);
  };
  const int64_t n = std::max({gl.size(1), gr.size(1), gb.size(1)});
  auto sl = sequence_scores({l, r}, src, pad(gl, n)), sr = sequence_scores({l, r}, src, pad(gr, n));
  auto sb = sequence_scores({l, r}, src, pad(gb, n));
  EXPECT_TRUE(torch::allclose(sb, torch::maximum(sl, sr), 1e-4, 1e-5));
  // A learning check: together they get more words right than either alone.
  auto right = [&](const Ensemble& models) {
    auto d = beam_decode(models, src, 6, k);
    return d.size(1) < 5 ? 0 : d.narrow(1, 0, 5).eq(out).all(1).sum().item<int64_t>();
  };
  const int64_t best_member = std::max(right({l}), right({r}));
  RecordProperty("best_member_right", static_cast<int>(best_member));
  EXPECT_LT(best_member, 64 * 9 / 10) << "the members are meant to be half-trained";
  EXPECT_GT(right({l, r}), best_member) << "of 64 rows";
}
