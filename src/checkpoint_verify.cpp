#include "resumable/checkpoint_verify.h"

#include <nlohmann/json.hpp>

#include "resumable/checkpoint_state.h"
#include "resumable/config.h"
#include "resumable/model.h"
#include "resumable/vocabulary.h"

namespace resumable {

CheckpointSummary verify_checkpoint(const LoadedCheckpoint& ck) {
  CheckpointSummary s = summarize_checkpoint(ck);  // layout and types, config validated
  StateReader root(ck.root, ck.path);
  TrainConfig cfg = config_from_json(nlohmann::json::parse(state_to_json_text(root["config"])), ck.path);
  ModelOptions o;
  o.source_vocab = Vocabulary::kNumSpecial + static_cast<int64_t>(root["vocabulary"]["graphemes"].items().size());
  o.target_vocab = Vocabulary::kNumSpecial + static_cast<int64_t>(root["vocabulary"]["phonemes"].items().size());
  o.d_model = cfg.d_model;
  o.heads = cfg.heads;
  o.encoder_layers = cfg.encoder_layers;
  o.decoder_layers = cfg.decoder_layers;
  o.ff_dim = cfg.ff_dim;
  o.dropout = cfg.dropout;
  G2PTransformer model(o);
  load_model_state_dict(*model, root["model"]);
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(cfg.lr));
  load_optimizer_state_dict(optimizer, *model, root["optimizer"]);
  return s;
}

}  // namespace resumable
