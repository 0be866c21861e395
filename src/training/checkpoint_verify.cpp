#include "resumable/training/checkpoint_verify.h"

#include <algorithm>

#include "resumable/checkpoint/checkpoint_state.h"
#include "resumable/data/batch.h"
#include "resumable/data/cmudict.h"
#include "resumable/training/resume_proof.h"
#include "resumable/training/resume_verifier.h"

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

SavedModel load_ensemble_member(const std::string& path, const Vocabulary& graphemes, const Vocabulary& phonemes,
                                const std::string& reference) {
  SavedModel m = load_saved_model(read_checkpoint(path));
  if (m.graphemes.symbols() != graphemes.symbols() || m.phonemes.symbols() != phonemes.symbols())
    throw CheckpointError(path + ": --ensemble: its vocabularies (" + std::to_string(m.graphemes.symbols().size()) +
                          " graphemes, " + std::to_string(m.phonemes.symbols().size()) + " phonemes) are not those of " +
                          reference + " (" + std::to_string(graphemes.symbols().size()) + ", " +
                          std::to_string(phonemes.symbols().size()) +
                          "); an ensemble needs models of the same dictionary");
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

DeepVerification deep_verify_checkpoint(const LoadedCheckpoint& ck, const std::string& data_path) {
  StateReader root(ck.root, ck.path);
  DeepVerification out;
  if (!root.has(ckpt_key::kResumeProof)) return out;
  const ResumeProof proof = from_state_dict<ResumeProof>(root[ckpt_key::kResumeProof]);
  if (proof.probe_samples.empty()) return out;
  SavedModel m = load_saved_model(ck);
  out.data = data_path.empty() ? m.config.data : data_path;
  // The run's training split exactly: same file, fractions and limit, checked by its fingerprint.
  std::vector<Pronunciation> entries;
  try {
    entries = load_cmudict(out.data);
  } catch (const std::exception& e) {
    throw CheckpointError(ck.path + ": deep verify needs the run's training data: " + e.what() +
                          " (--data FILE names it)");
  }
  G2PCorpus corpus = build_corpus(entries, m.config.val_fraction, m.config.test_fraction,
                                  static_cast<size_t>(m.config.limit_words));
  const std::string saved_fingerprint = root[ckpt_key::kData]["fingerprint"].to_string();
  const std::string fingerprint = training_data_fingerprint(corpus);
  if (fingerprint != saved_fingerprint)
    throw CheckpointError(ck.path + ": deep verify: " + out.data + " is not the data this run trained on (fingerprint " +
                          fingerprint + ", saved " + saved_fingerprint + ")");
  EncodedCorpus data = encode_corpus(corpus, m.graphemes, m.phonemes, targets_right_to_left(m.config));
  out.recorded = true;
  out.recorded_loss = proof.probe_loss;
  out.recorded_on = proof.probe_device;
  out.last_loss = proof.last_loss;
  out.samples = static_cast<int64_t>(proof.probe_samples.size());
  ProbeLoss probe = probe_loss(m.model, data, proof.probe_samples, c10::Device(c10::kCPU));
  out.recomputed_loss = probe.loss;
  out.tokens = probe.tokens;
  out.tolerance = kProbeTolerance * std::max(1.0, std::abs(proof.probe_loss));
  if (probe.tokens != proof.probe_tokens)
    throw CheckpointError(ck.path + ": deep verify: the probe's samples hold " + std::to_string(probe.tokens) +
                          " target tokens in " + out.data + ", " + std::to_string(proof.probe_tokens) + " when saved");
  return out;
}

}  // namespace resumable
