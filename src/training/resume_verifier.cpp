#include "resumable/training/resume_verifier.h"

#include <algorithm>

#include <torch/utils.h>

#include "resumable/checkpoint/checkpoint_state.h"
#include "resumable/training/checkpoint_schema.h"
#include "resumable/training/evaluator.h"
#include "resumable/util/xxhash64.h"

namespace resumable {
namespace {

std::string digest_text(int64_t d) { return "xxh3:" + hex64(static_cast<uint64_t>(d)); }

void hash_tensor(XXH3& h, const at::Tensor& t) {
  at::Tensor c = t.to(at::kCPU).contiguous();
  const int64_t dims = c.dim();
  h.update(&dims, sizeof dims);
  for (int64_t i = 0; i < dims; ++i) {
    const int64_t s = c.size(i);
    h.update(&s, sizeof s);
  }
  h.update(c.data_ptr(), c.nbytes());
}

}  // namespace

uint64_t batch_content_digest(const EncodedCorpus& data, const std::vector<int64_t>& ids) {
  XXH3 h(0x70726f6f66ULL);  // "proof"
  for (int64_t i : ids) {
    const EncodedExample& e = data.train[static_cast<size_t>(i)];
    for (const auto* part : {&e.source, &e.target}) {
      const uint64_t n = part->size();
      h.update(&n, sizeof n);
      h.update(part->data(), n * sizeof(int64_t));
    }
  }
  return h.digest();
}

uint64_t batch_tensor_digest(const Batch& batch) {
  XXH3 h(0x70726f6f66ULL);
  for (const auto* t : {&batch.source, &batch.target_in, &batch.target_out, &batch.weight}) hash_tensor(h, *t);
  return h.digest();
}

ProbeLoss probe_loss(G2PTransformer& model, const EncodedCorpus& data, const std::vector<int64_t>& ids,
                     const c10::Device& device) {
  ProbeLoss out;
  if (ids.empty()) return out;
  std::vector<const EncodedExample*> examples;
  for (int64_t i : ids) examples.push_back(&data.train[static_cast<size_t>(i)]);
  Batch batch = collate(examples, std::vector<float>(examples.size(), 1.0f), device);
  const bool was_training = model->is_training();
  model->eval();
  {
    torch::NoGradGuard no_grad;
    TeacherForcedLoss loss = teacher_forced_loss(model, batch);
    out.tokens = loss.tokens;
    out.loss = loss.sum / static_cast<double>(std::max<int64_t>(loss.tokens, 1));
  }
  model->train(was_training);
  return out;
}

ResumeProof record_resume_proof(const DistributedSampler& sampler, int64_t k, const EncodedCorpus& data,
                                int world_size, G2PTransformer& model, const c10::Device& device, int64_t step,
                                double last_loss, bool probe) {
  ResumeProof p;
  p.step = step;
  p.world_size = world_size;
  p.last_loss = last_loss;
  DistributedSampler next = sampler;  // a copy: the live sampler must not move
  for (int64_t b = 0; b < k; ++b) {
    if (next.epoch_done()) next.start_epoch(next.state().epoch + 1);
    std::vector<int64_t> batch = next.next_global_batch();
    p.batch_sizes.push_back(static_cast<int64_t>(batch.size()));
    p.sample_ids.insert(p.sample_ids.end(), batch.begin(), batch.end());
    p.batch_digests.push_back(static_cast<int64_t>(batch_content_digest(data, batch)));
  }
  if (p.batch_sizes.empty()) return p;
  const std::vector<int64_t> first = p.batch(0);
  for (int r = 0; r < world_size; ++r)
    p.rank_digests.push_back(static_cast<int64_t>(
        batch_tensor_digest(collate_rank_share(data, first, r, world_size, c10::Device(c10::kCPU)))));
  p.probe_samples.assign(first.begin(), first.begin() + std::min<std::ptrdiff_t>(kProbeSamples, first.size()));
  if (!probe) return p;
  ProbeLoss loss = probe_loss(model, data, p.probe_samples, device);
  p.probe_loss = loss.loss;
  p.probe_tokens = loss.tokens;
  p.probe_device = device.str();
  return p;
}

void fill_snapshot_probe(G2PTransformer& scratch, c10::IValue& state, const EncodedCorpus& data) {
  auto root = state.toGenericDict();
  auto proof_dict = root.at(ckpt_key::kResumeProof).toGenericDict();
  const ResumeProof proof = from_state_dict<ResumeProof>(StateReader(proof_dict, "snapshot"));
  if (proof.probe_samples.empty()) return;
  auto weights = root.at(ckpt_key::kModel).toGenericDict();
  auto params = scratch->named_parameters();
  for (auto& p : params) p.value().set_data(weights.at(p.key()).toTensor());
  ProbeLoss loss;
  try {
    loss = probe_loss(scratch, data, proof.probe_samples, c10::Device(c10::kCPU));
  } catch (...) {
    for (auto& p : params) p.value().set_data(at::empty({0}, p.value().options()));
    proof_dict.insert_or_assign("probe_samples", at::empty({0}, at::kLong));  // no probe rather than a wrong one
    throw;
  }
  // The snapshot's memory is reused by the next save only once nothing else holds it.
  for (auto& p : params) p.value().set_data(at::empty({0}, p.value().options()));
  proof_dict.insert_or_assign("probe_loss", loss.loss);
  proof_dict.insert_or_assign("probe_tokens", loss.tokens);
  proof_dict.insert_or_assign("probe_device", std::string("cpu"));
}

std::string ResumeVerifier::batch_name(size_t i) const {
  return "global batch " + std::to_string(i + 1) + " of " + std::to_string(batches()) + " after step " +
         std::to_string(recorded_.step);
}

std::string ResumeVerifier::compare_next(const std::vector<int64_t>& batch, const EncodedCorpus& data) {
  if (done()) return "";
  const size_t i = next_++;
  const std::vector<int64_t> want = recorded_.batch(i);
  if (batch.size() != want.size())
    return batch_name(i) + " has " + std::to_string(batch.size()) + " samples, the checkpoint recorded " +
           std::to_string(want.size());
  auto diff = std::mismatch(batch.begin(), batch.end(), want.begin());
  if (diff.first != batch.end())
    return batch_name(i) + " differs at position " + std::to_string(diff.first - batch.begin()) + ": sample " +
           std::to_string(*diff.first) + ", the checkpoint recorded " + std::to_string(*diff.second);
  const int64_t content = static_cast<int64_t>(batch_content_digest(data, batch));
  if (content != recorded_.batch_digests[i])
    return batch_name(i) + " has the recorded sample ids but other words (" + digest_text(content) +
           ", recorded " + digest_text(recorded_.batch_digests[i]) + "): the training data changed";
  return "";
}

std::string ResumeVerifier::compare_first_batch_digests(const std::vector<int64_t>& digests) const {
  for (size_t r = 0; r < digests.size() && r < recorded_.rank_digests.size(); ++r)
    if (digests[r] != recorded_.rank_digests[r])
      return "rank " + std::to_string(r) + "'s share of " + batch_name(0) + " collates to other tensors (" +
             digest_text(digests[r]) + ", recorded " + digest_text(recorded_.rank_digests[r]) + ")";
  return "";
}

}  // namespace resumable
