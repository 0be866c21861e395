// `ckpt export`: a checkpoint's model weights in a file other programs read without this trainer.
//   --format safetensors  the safetensors layout (8-byte header length, JSON header, raw data),
//                         written here: the format is small and fixed, and the Python
//                         `safetensors` package reading it back is what the tests check
//   --format pt           a plain {name: tensor} dict for torch.load(weights_only=True)
// Both are written atomically, and the vocabulary and architecture go beside them as
// STEM.vocab.json (also inside the safetensors header's __metadata__), since the ids mean nothing
// without the symbol tables.
#include <algorithm>
#include <cstring>
#include <iostream>

#include <nlohmann/json.hpp>

#include "resumable/data/vocabulary.h"
#include "resumable/model/model.h"
#include "resumable/tools/ckpt_command.h"
#include "resumable/training/checkpoint_schema.h"
#include "resumable/util/atomic_file.h"
#include "resumable/util/errors.h"

namespace resumable {
namespace {

using json = nlohmann::json;

const char* safetensors_dtype(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "F32";
    case at::kDouble: return "F64";
    case at::kHalf: return "F16";
    case at::kBFloat16: return "BF16";
    case at::kLong: return "I64";
    case at::kInt: return "I32";
    case at::kShort: return "I16";
    case at::kChar: return "I8";
    case at::kByte: return "U8";
    case at::kBool: return "BOOL";
    default: return nullptr;
  }
}

std::string stem_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  auto dot = path.find_last_of('.');
  return dot != std::string::npos && (slash == std::string::npos || dot > slash) ? path.substr(0, dot) : path;
}

void write_atomically(const std::string& path, const std::string& bytes) {
  AtomicFileWriter out(path);
  out.write(bytes.data(), bytes.size());
  out.commit();
}

}  // namespace

int ckpt_export(const std::vector<std::string>& raw) {
  ToolArgs a = parse_tool_args("ckpt export", raw, {"-o", "--output", "--format"}, {"--json"});
  if (a.positional.size() != 1) throw ConfigError("ckpt export: expected one checkpoint FILE (see trainer ckpt export --help)");
  std::string out = a.value("-o").value_or(a.value("--output").value_or(""));
  if (out.empty()) throw ConfigError("ckpt export: -o OUT is required (the file to write)");
  std::string format = a.value("--format").value_or("");
  if (format.empty()) {
    if (out.size() > 12 && out.compare(out.size() - 12, 12, ".safetensors") == 0) format = "safetensors";
    else if (out.size() > 3 && out.compare(out.size() - 3, 3, ".pt") == 0) format = "pt";
  }
  if (format != "safetensors" && format != "pt")
    throw ConfigError("ckpt export: --format: expected safetensors or pt, got '" + format + "'");

  LoadedCheckpoint ck = read_checkpoint(a.positional[0]);
  CheckpointSummary s = summarize_checkpoint(ck);
  StateReader root(ck.root, ck.path);
  TrainConfig cfg = saved_config(ck);
  StateReader model = root[ckpt_key::kModel];
  std::vector<std::string> names = model.keys();
  std::sort(names.begin(), names.end());

  const std::vector<std::string> graphemes = root[ckpt_key::kVocabulary]["graphemes"].to_strings();
  const std::vector<std::string> phonemes = root[ckpt_key::kVocabulary]["phonemes"].to_strings();
  ModelOptions o = model_options(cfg, Vocabulary::kNumSpecial + static_cast<int64_t>(graphemes.size()),
                                 Vocabulary::kNumSpecial + static_cast<int64_t>(phonemes.size()));
  json vocab = {
      {"graphemes", graphemes},
      {"phonemes", phonemes},
      {"special_ids", {{"<pad>", Vocabulary::kPad}, {"<bos>", Vocabulary::kBos}, {"<eos>", Vocabulary::kEos}, {"<unk>", Vocabulary::kUnk}}},
      {"first_symbol_id", Vocabulary::kNumSpecial},
      {"architecture",
       {{"model", "pre-norm Transformer encoder-decoder"}, {"source_vocab", o.source_vocab}, {"target_vocab", o.target_vocab},
        {"d_model", o.d_model}, {"heads", o.heads}, {"encoder_layers", o.encoder_layers},
        {"decoder_layers", o.decoder_layers}, {"ff_dim", o.ff_dim},
        {"target_order", cfg.target_order}}},
      {"source", {{"checkpoint", ck.path}, {"checksum", ck.checksum}, {"step", s.global_step}, {"epoch", s.epoch},
                  {"trainer_version", s.trainer_version}}},
  };

  size_t bytes = 0;
  if (format == "pt") {
    StateDict weights = new_state_dict();
    for (const auto& n : names) weights.insert(n, model[n].to_tensor());
    SerializedCheckpoint file = serialize_checkpoint(weights);
    write_atomically(out, file.bytes);
    bytes = file.bytes.size();
  } else {
    json header = json::object();
    std::vector<at::Tensor> data;
    size_t offset = 0;
    for (const auto& n : names) {
      at::Tensor t = model[n].to_tensor().to(at::kCPU).contiguous();
      const char* dtype = safetensors_dtype(t.scalar_type());
      if (!dtype) model[n].fail(std::string("has dtype ") + c10::toString(t.scalar_type()) + ", which safetensors cannot hold");
      header[n] = {{"dtype", dtype}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + t.nbytes()}}};
      offset += t.nbytes();
      data.push_back(t);
    }
    header["__metadata__"] = {{"format", "pt"}, {"resumable", vocab.dump()}};
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
    std::string file(8, '\0');
    uint64_t n = text.size();
    std::memcpy(file.data(), &n, 8);  // little-endian hosts only (x86, arm)
    file += text;
    file.reserve(file.size() + offset);
    for (const auto& t : data) file.append(static_cast<const char*>(t.data_ptr()), t.nbytes());
    write_atomically(out, file);
    bytes = file.size();
  }
  const std::string vocab_path = stem_of(out) + ".vocab.json";
  write_atomically(vocab_path, vocab.dump(2) + "\n");
  if (a.has("--json")) {
    std::cout << json{{"source", ck.path}, {"output", out}, {"format", format}, {"tensors", names.size()},
                      {"bytes", bytes}, {"vocabulary", vocab_path}, {"step", s.global_step}}
                     .dump(2)
              << "\n";
  } else {
    std::printf("exported %zu tensors (%.3fM parameters, step %lld) of %s to %s (%s, %s); vocabulary and architecture "
                "in %s\n",
                names.size(), s.parameters / 1e6, static_cast<long long>(s.global_step), ck.path.c_str(), out.c_str(),
                format.c_str(), size_text(static_cast<double>(bytes)).c_str(), vocab_path.c_str());
  }
  return exit_code::kDone;
}

}  // namespace resumable
