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
