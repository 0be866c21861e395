#include "resumable/training/resume_verifier.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "resumable/checkpoint/checkpoint_state.h"
#include "resumable/training/checkpoint_schema.h"

#include "../model/toy_task.h"

using namespace resumable;

namespace {

// 30 synthetic words over a 12-symbol alphabet: ids 4.. are symbols (0-3 are specials).
EncodedCorpus corpus() {
  EncodedCorpus c;
  for (int64_t i = 0; i < 30; ++i) {
    EncodedExample e;
    for (int64_t k = 0; k < 2 + i % 5; ++k) e.source.push_back(4 + (i * 7 + k * 3) % 8);
    for (int64_t k = 0; k < 1 + i % 4; ++k) e.target.push_back(4 + (i * 5 + k) % 5);
    c.train.push_back(e);
  }
  return c;
}

G2PTransformer model() {
  torch::manual_seed(3);
  ModelOptions o = small();
  o.decoder_layers = 1;
  o.dropout = 0.3;
  return G2PTransformer(o);
}

DistributedSampler sampler_at(const EncodedCorpus& c, int64_t epoch, int64_t cursor, int64_t batch = 8) {
  DistributedSampler s(c.train_lengths(), 11, SamplerOptions{batch, true});
  s.start_epoch(epoch);
  SamplerState st = s.state();
  st.cursor = cursor;
  s.load_state(st);
  return s;
}

// What a resumed run does: draw batches and compare each with the record before training on it.
std::string check_batches(const ResumeProof& proof, DistributedSampler s, const EncodedCorpus& c) {
  ResumeVerifier v(proof);
  while (!v.done()) {
    if (s.epoch_done()) s.start_epoch(s.state().epoch + 1);
    std::string problem = v.compare_next(s.next_global_batch(), c);
    if (!problem.empty()) return problem;
  }
  return "";
}

}  // namespace

TEST(ResumeVerifier, TheBatchesThatFollowASaveMatchItsRecordIntoTheNextEpoch) {
  EncodedCorpus c = corpus();
  G2PTransformer m = model();
  // 30 samples, batches of 8: from sample 16 the record covers 16-23, 24-29, then the next epoch.
  DistributedSampler s = sampler_at(c, 2, 16);
  ResumeProof p = record_resume_proof(s, 4, c, 2, m, c10::Device(c10::kCPU), 77, 1.5);
  EXPECT_EQ(s.state().cursor, 16) << "recording must not move the live sampler";
  EXPECT_EQ(p.batch_sizes, (std::vector<int64_t>{8, 6, 8, 8}));
  EXPECT_EQ(p.rank_digests.size(), 2u);
  EXPECT_EQ(p.probe_samples, p.batch(0));  // fewer than kProbeSamples in a batch of 8
  EXPECT_EQ(p.step, 77);
  EXPECT_DOUBLE_EQ(p.last_loss, 1.5);
  EXPECT_GT(p.probe_tokens, 0);
  EXPECT_TRUE(std::isfinite(p.probe_loss) && p.probe_loss > 0);
  EXPECT_EQ(check_batches(p, sampler_at(c, 2, 16), c), "");
}

TEST(ResumeVerifier, AnOffByOneCursorIsCaughtAtTheFirstBatch) {
  EncodedCorpus c = corpus();
  G2PTransformer m = model();
  ResumeProof p = record_resume_proof(sampler_at(c, 1, 8), 4, c, 1, m, c10::Device(c10::kCPU), 5, 0);
  std::string problem = check_batches(p, sampler_at(c, 1, 9), c);
  EXPECT_NE(problem.find("global batch 1 of 4 after step 5 differs at position 0"), std::string::npos) << problem;
}

TEST(ResumeVerifier, AnotherBatchSizeOrEpochIsCaught) {
  EncodedCorpus c = corpus();
  G2PTransformer m = model();
  ResumeProof p = record_resume_proof(sampler_at(c, 1, 8), 2, c, 1, m, c10::Device(c10::kCPU), 5, 0);
  std::string problem = check_batches(p, sampler_at(c, 1, 8, 4), c);
  EXPECT_NE(problem.find("has 4 samples, the checkpoint recorded 8"), std::string::npos) << problem;
  EXPECT_NE(check_batches(p, sampler_at(c, 2, 8), c), "");
}

TEST(ResumeVerifier, OtherWordsBehindTheSameIdsAreCaught) {
  EncodedCorpus c = corpus();
  G2PTransformer m = model();
  DistributedSampler s = sampler_at(c, 0, 0);
  ResumeProof p = record_resume_proof(s, 3, c, 1, m, c10::Device(c10::kCPU), 0, 0);
  EncodedCorpus changed = c;
  const int64_t second_batch_sample = p.batch(1).back();
  auto& target = changed.train[static_cast<size_t>(second_batch_sample)].target;
  target[0] = target[0] == 5 ? 6 : 5;  // same length: the order by length stays
  std::string problem = check_batches(p, sampler_at(changed, 0, 0), changed);
  EXPECT_NE(problem.find("global batch 2 of 3"), std::string::npos) << problem;
  EXPECT_NE(problem.find("the training data changed"), std::string::npos) << problem;
}

TEST(ResumeVerifier, EachRanksCollatedTensorsAreCompared) {
  EncodedCorpus c = corpus();
  G2PTransformer m = model();
  ResumeProof p = record_resume_proof(sampler_at(c, 0, 0), 1, c, 3, m, c10::Device(c10::kCPU), 0, 0);
  ResumeVerifier v(p);
  std::vector<int64_t> digests;
  for (int r = 0; r < 3; ++r)
    digests.push_back(static_cast<int64_t>(batch_tensor_digest(collate_rank_share(c, p.batch(0), r, 3, c10::Device(c10::kCPU)))));
  EXPECT_EQ(v.compare_first_batch_digests(digests), "");
  digests[2] ^= 1;
  EXPECT_NE(v.compare_first_batch_digests(digests).find("rank 2's share of global batch 1"), std::string::npos);
}

TEST(ResumeVerifier, TheProbeDrawsNoRandomNumbersAndKeepsTheTrainingMode) {
  EncodedCorpus c = corpus();
  G2PTransformer m = model();
  m->train();
  torch::manual_seed(42);
  at::Tensor before = torch::rand({4});
  torch::manual_seed(42);
  ProbeLoss a = probe_loss(m, c, {1, 2, 3}, c10::Device(c10::kCPU));
  at::Tensor after = torch::rand({4});
  EXPECT_TRUE(torch::equal(before, after)) << "the probe moved the RNG stream that dropout uses";
  EXPECT_TRUE(m->is_training());
  ProbeLoss b = probe_loss(m, c, {1, 2, 3}, c10::Device(c10::kCPU));
  EXPECT_EQ(a.loss, b.loss);  // evaluation mode: no dropout, the same every time
  EXPECT_EQ(a.tokens, b.tokens);
}

TEST(ResumeVerifier, TheWriterThreadsProbeOfASnapshotEqualsTheLiveOne) {
  EncodedCorpus c = corpus();
  G2PTransformer m = model();
  DistributedSampler s = sampler_at(c, 0, 8);
  ResumeProof live = record_resume_proof(s, 2, c, 1, m, c10::Device(c10::kCPU), 3, 0);
  ResumeProof deferred = record_resume_proof(s, 2, c, 1, m, c10::Device(c10::kCPU), 3, 0, /*probe=*/false);
  EXPECT_EQ(deferred.probe_samples, live.probe_samples);
  StateDict root = new_state_dict();
  root.insert(ckpt_key::kModel, snapshot_copy(c10::IValue(model_state_dict(*m))));
  root.insert(ckpt_key::kResumeProof, to_state_dict(deferred));
  c10::IValue state(root);
  G2PTransformer scratch = model();
  for (auto& p : scratch->parameters()) p.set_data(at::empty({0}, p.options()));
  fill_snapshot_probe(scratch, state, c);
  ResumeProof filled =
      from_state_dict<ResumeProof>(StateReader(state.toGenericDict().at(ckpt_key::kResumeProof), "test"));
  EXPECT_DOUBLE_EQ(filled.probe_loss, live.probe_loss);
  EXPECT_EQ(filled.probe_tokens, live.probe_tokens);
  EXPECT_EQ(filled.probe_device, "cpu");
  for (auto& p : scratch->parameters()) EXPECT_EQ(p.numel(), 0) << "the scratch model still holds the snapshot";
}
