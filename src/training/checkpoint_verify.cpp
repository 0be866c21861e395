#include "resumable/training/checkpoint_verify.h"

#include "resumable/checkpoint/checkpoint_state.h"
#include "resumable/model/model.h"
#include "resumable/data/vocabulary.h"

namespace resumable {

CheckpointSummary verify_checkpoint(const LoadedCheckpoint& ck) {
  CheckpointSummary s = summarize_checkpoint(ck);  // layout and types, config validated
  StateReader root(ck.root, ck.path);
  TrainConfig cfg = saved_config(ck);
  G2PTransformer model(model_options(
      cfg, Vocabulary::kNumSpecial + static_cast<int64_t>(root["vocabulary"]["graphemes"].items().size()),
      Vocabulary::kNumSpecial + static_cast<int64_t>(root["vocabulary"]["phonemes"].items().size())));
  load_model_state_dict(*model, root["model"]);
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(cfg.lr));
  load_optimizer_state_dict(optimizer, *model, root["optimizer"]);
  return s;
}

}  // namespace resumable
