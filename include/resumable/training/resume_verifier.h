// Records a ResumeProof at every save and checks a resumed run against it: before the trainer
// trains on a batch it compares it with the record, the global order at any world size (ids and
// the words behind them), each rank's collated tensors of the first batch at the same world size.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <c10/core/Device.h>

#include "resumable/data/batch.h"
#include "resumable/data/distributed_sampler.h"
#include "resumable/model/model.h"
#include "resumable/training/resume_proof.h"

namespace resumable {

// Digest of the words of `ids` in this order, as encoded ids: the same at any world size.
uint64_t batch_content_digest(const EncodedCorpus& data, const std::vector<int64_t>& ids);
// Digest of a collated batch's tensors (shapes and values), on any device.
uint64_t batch_tensor_digest(const Batch& batch);

struct ProbeLoss {
  double loss = 0;
  int64_t tokens = 0;
};
// Mean token cross-entropy of `ids` under `model`'s weights: evaluation mode (no dropout, no RNG
// drawn), fp32, no gradients; the model's training mode is restored.
ProbeLoss probe_loss(G2PTransformer& model, const EncodedCorpus& data, const std::vector<int64_t>& ids,
                     const c10::Device& device);

// What comes after the sampler's position: the next `k` global batches (continuing into later
// epochs), the digests, and the probe over the first batch's first samples. With `probe` false
// the probe's samples are chosen but its loss is left to fill_snapshot_probe().
ResumeProof record_resume_proof(const DistributedSampler& sampler, int64_t k, const EncodedCorpus& data,
                                int world_size, G2PTransformer& model, const c10::Device& device, int64_t step,
                                double last_loss, bool probe = true);

// The probe of a background save, on its writer thread while training goes on: computed from the
// snapshot's weights (the live ones move on) by `scratch`, a model of the same architecture whose
// parameters are pointed at the snapshot's tensors for the forward pass and released after it.
// Fills resume_proof's probe_loss, probe_tokens and probe_device in `state` (a checkpoint's root).
void fill_snapshot_probe(G2PTransformer& scratch, c10::IValue& state, const EncodedCorpus& data);

// The comparison of a resumed run's batches with the record, one global batch at a time.
class ResumeVerifier {
 public:
  explicit ResumeVerifier(ResumeProof recorded) : recorded_(std::move(recorded)) {}
  // Empty when the next batch equals the record; else what differs (naming the batch).
  std::string compare_next(const std::vector<int64_t>& batch, const EncodedCorpus& data);
  // Empty when every rank's digest of its collated share of the first batch (batch_tensor_digest,
  // in rank order) equals the record; else which rank differs first.
  std::string compare_first_batch_digests(const std::vector<int64_t>& digests) const;
  bool first() const { return next_ == 0; }
  size_t checked() const { return next_; }  // batches compared so far
  bool done() const { return next_ >= recorded_.batch_sizes.size(); }
  size_t batches() const { return recorded_.batch_sizes.size(); }
  const ResumeProof& recorded() const { return recorded_; }

 private:
  std::string batch_name(size_t i) const;
  ResumeProof recorded_;
  size_t next_ = 0;
};

}  // namespace resumable
