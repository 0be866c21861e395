// A resume that proves itself: what a checkpoint records of what must come next. The sample
// ids of the next K global batches, a digest of each batch's words, a digest of each rank's
// collated tensors of the first one, the last step's loss, and a probe: the loss of a few next
// samples under the saved weights (evaluation mode, fp32), which `ckpt verify --deep` recomputes
// offline. ResumeVerifier (resume_verifier.h) records it and checks a resumed run against it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace resumable {

struct ResumeProof {
  int64_t step = 0;                    // the checkpoint's global step: the batches come after it
  int64_t world_size = 0;              // ranks when recorded: per-rank digests compare only at this one
  std::vector<int64_t> batch_sizes;    // the next K global batches' sizes ...
  std::vector<int64_t> sample_ids;     // ... and their sample ids, concatenated
  std::vector<int64_t> batch_digests;  // XXH3 of each batch's encoded words in global order (bit pattern)
  std::vector<int64_t> rank_digests;   // XXH3 of each rank's collated tensors of the first batch
  double last_loss = 0;                // training loss of `step` (mean per target token, all ranks)
  // The probe: mean token cross-entropy (no label smoothing) of these samples under the saved
  // weights, evaluation mode, fp32, computed on `probe_device` as the save was taken.
  std::vector<int64_t> probe_samples;
  double probe_loss = 0;
  int64_t probe_tokens = 0;
  std::string probe_device;

  template <class Visitor>
  void visit(Visitor&& v) {
    v("step", step);
    v("world_size", world_size);
    v("batch_sizes", batch_sizes);
    v("sample_ids", sample_ids);
    v("batch_digests", batch_digests);
    v("rank_digests", rank_digests);
    v("last_loss", last_loss);
    v("probe_samples", probe_samples);
    v("probe_loss", probe_loss);
    v("probe_tokens", probe_tokens);
    v("probe_device", probe_device);
  }
  // The ids of recorded batch i.
  std::vector<int64_t> batch(size_t i) const {
    size_t start = 0;
    for (size_t j = 0; j < i; ++j) start += static_cast<size_t>(batch_sizes[j]);
    return {sample_ids.begin() + static_cast<std::ptrdiff_t>(start),
            sample_ids.begin() + static_cast<std::ptrdiff_t>(start + static_cast<size_t>(batch_sizes[i]))};
  }
};

// The largest difference `ckpt verify --deep` accepts between the recorded and the recomputed
// probe loss, relative to the loss: CPU thread counts and GPU kernels sum in other orders.
inline constexpr double kProbeTolerance = 1e-4;
inline constexpr int64_t kProbeSamples = 16;

}  // namespace resumable
