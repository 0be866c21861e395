// One checkpoint file: a zip in PyTorch's own format, so `torch.load(path, weights_only=True)`
// reads it in Python as a plain dict (tensors, numbers, strings, lists, dicts; nothing that runs
// code). Beside PyTorch's records it holds a `checksum` record: XXH64 over the pickle and every
// tensor record, checked before anything is unpickled, so truncation, bit flips and swapped
// records are refused with a message naming the file.
//
// The writer takes a finished in-memory state (CPU tensors the caller no longer mutates), so it
// can run on a background thread while training continues.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/ivalue.h>

namespace resumable {

constexpr int64_t kCheckpointFormatVersion = 1;

struct WrittenCheckpoint {
  size_t bytes = 0;
  std::string checksum;  // "xxh64:<16 hex digits>"
  double seconds = 0;    // serialize + write + fsync + rename
};

struct SerializedCheckpoint {
  std::string bytes;     // the archive: what write_checkpoint() puts on disk
  std::string checksum;  // "xxh64:<16 hex digits>"
};
SerializedCheckpoint serialize_checkpoint(const c10::IValue& state);
// Writes `state` once and publishes it atomically under every path in `paths`, in order (the
// first name is replaced first). Throws SaveError naming the path; earlier files stay intact.
WrittenCheckpoint write_checkpoint(const c10::IValue& state, const std::vector<std::string>& paths);

namespace detail {
// The archive of a pickle and the tensor storages it references (record data/<i> for the i-th),
// with its checksum. serialize_checkpoint() uses it; tests use it to build hostile files.
SerializedCheckpoint assemble_archive(const std::string& pickle, const std::vector<at::Tensor>& storages);
}  // namespace detail

struct LoadedCheckpoint {
  std::string path;
  c10::IValue root;      // a dict with string keys, format_version checked
  std::string checksum;
  size_t bytes = 0;
};

// Reads and verifies a checkpoint. Throws CheckpointError "PATH: problem" on anything wrong:
// missing, empty, not a zip, truncated, checksum mismatch, not a dict, a newer format.
LoadedCheckpoint read_checkpoint(const std::string& path);
struct ReadOptions {
  // Always true in the trainer; the fuzzer turns it off to reach the unpickler behind it.
  bool verify_checksum = true;
};
// The same from bytes already in memory; `origin` names them in errors.
LoadedCheckpoint parse_checkpoint(std::string bytes, const std::string& origin, ReadOptions options = {});

}  // namespace resumable
