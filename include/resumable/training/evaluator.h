// Validation and test metrics, computed on each rank's share of the words and reduced across
// ranks: teacher-forced loss and token accuracy, and WER/PER of greedy decoding or beam search,
// of one model or an ensemble (decoding.h).
#pragma once

#include <functional>
#include <optional>

#include <c10/core/Device.h>

#include "resumable/data/batch.h"
#include "resumable/model/decoding.h"
#include "resumable/training/train_state.h"

namespace resumable {

class Distributed;

struct EvalOptions {
  int64_t batch_size = 512;  // words per rank per batch
  int64_t limit = 0;         // first N words of the split (0 = all)
  int64_t beam = 1;          // beam width of decoding (1 = greedy)
};

// Teacher forcing on `batch`: the logits, the summed token cross-entropy (no label smoothing,
// padding ignored) and the number of target tokens. Validation's loss and the resume proof's probe
// are both this, divided by the tokens. The caller chooses the mode (eval) and no-grad.
struct TeacherForcedLoss {
  at::Tensor logits;  // [B,T,V] float
  double sum = 0;
  int64_t tokens = 0;
};
TeacherForcedLoss teacher_forced_loss(G2PTransformer& model, const Batch& batch);
// The same for an ensemble, whose `logits` are its averaged log-probabilities; with one member,
// exactly the function above.
TeacherForcedLoss teacher_forced_loss(const Ensemble& models, const Batch& batch);

class Evaluator {
 public:
  Evaluator(const EncodedCorpus& data, Distributed& dist, c10::Device device);
  // Collective: every rank must call it. Leaves the models in eval mode. With `stop`, the ranks
  // agree after every batch whether any of them was asked to stop (one tiny allreduce), and all
  // return nullopt together: a stop request waits for one batch, not a whole evaluation.
  std::optional<EvalResult> evaluate(const Ensemble& models, Split split, const EvalOptions& options,
                                     const std::function<bool()>& stop = nullptr);

 private:
  const EncodedCorpus& data_;
  Distributed& dist_;
  c10::Device device_;
};

}  // namespace resumable
