#include "resumable/training/checkpoint_verify.h"

#include "resumable/checkpoint/checkpoint_state.h"

namespace resumable {
SavedModel load_saved_model(const LoadedCheckpoint& ck) {
  StateReader root(ck.root, ck.path);
  SavedModel m;
  m.config = saved_config(ck);
  m.graphemes = Vocabulary(root[ckpt_key::kVocabulary]["graphemes"].to_strings());
  m.phonemes = Vocabulary(root[ckpt_key::kVocabulary]["phonemes"].to_strings());
  m.model = G2PTransformer(model_options(m.config, m.graphemes.size(), m.phonemes.size()));
  load_model_state_dict(*m.model, root[ckpt_key::kModel]);
  m.model->eval();
  return m;
}

CheckpointSummary verify_checkpoint(const LoadedCheckpoint& ck) {
  CheckpointSummary s = summarize_checkpoint(ck);  // layout and types, config validated
  // Every tensor loaded where a resume would load it: a wrong shape, dtype or name is found here.
  SavedModel m = load_saved_model(ck);
  torch::optim::AdamW optimizer(m.model->parameters(), torch::optim::AdamWOptions(m.config.lr));
  load_optimizer_state_dict(optimizer, *m.model, StateReader(ck.root, ck.path)[ckpt_key::kOptimizer]);
  return s;
}

}  // namespace resumable
