// One checkpoint file: a zip in PyTorch's own format, so `torch.load(path, weights_only=True)`
// reads it in Python as a plain dict (tensors, numbers, strings, lists, dicts; nothing that runs
// code). Beside PyTorch's records it holds a `checksum` record: XXH3 over the pickle and every
// tensor record ("xxh3:<hex>"; files written before XXH3 carry XXH64, "xxh64:<hex>", and still
// verify), checked before anything is unpickled, so truncation, bit flips and swapped records are
// refused with a message naming the file. An algorithm this trainer does not know is refused as
// written by a newer trainer.
//
// The writer takes a finished in-memory state (CPU tensors the caller no longer mutates), so it
// can run on a background thread while training continues.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/ivalue.h>

namespace resumable {

constexpr int64_t kCheckpointFormatVersion = 1;

// Where a checkpoint stands in its run's history, in a small `meta` record beside the pickle that
// can be read without the tensors: ordering the files of a run directory, pruning them and
// choosing what to resume from all read it, never the file system's clock. The record carries its
// own checksum, so trainers that predate it ignore it and still read the file.
struct CheckpointAncestor {
  std::string checksum;  // of the checkpoint a resume loaded
  std::string path;      // as it was given (absolute)
};
struct CheckpointMeta {
  int64_t step = 0;      // global step (equals train_state.global_step)
  int64_t epoch = 0;     // equals train_state.epoch
  // Which launch of the run wrote it: each launch that trains takes 1 + the highest segment found
  // in the run directory and in the checkpoint it resumes, so a later launch always sorts after
  // every file it could have seen, whatever the steps. 0: written before segments existed.
  int64_t segment = 0;
  std::vector<CheckpointAncestor> resumed_from;  // the resumes of its timeline, oldest first
  int64_t saved_at = 0;  // unix seconds, for people only: never used to order files
  // Empty for the saves of a whole job. Else the failure after which the survivors of a lost rank
  // wrote it, and which rank did (ckpt info and list show it).
  std::string after_failure;

  // Newer in the run's history: higher segment, then higher step.
  bool newer_than(const CheckpointMeta& o) const {
    return segment != o.segment ? segment > o.segment : step > o.step;
  }
  // Whether a resume from the checkpoint with this checksum, or this path, lies in its history.
  bool descends_from(const std::string& checksum, const std::string& path) const;
};

struct WrittenCheckpoint {
  size_t bytes = 0;
  std::string checksum;  // "xxh3:<16 hex digits>" ("xxh64:..." in older files)
  double seconds = 0;    // serialize + write + fsync + rename
  std::vector<std::string> published;  // names now holding it, in order (the first always)
  std::vector<std::string> problems;   // failures after the first name was in place
};

struct SerializedCheckpoint {
  std::string bytes;     // the archive: what write_checkpoint() puts on disk
  std::string checksum;  // "xxh3:<16 hex digits>" ("xxh64:..." in older files)
};
SerializedCheckpoint serialize_checkpoint(const c10::IValue& state, const CheckpointMeta* meta = nullptr);
// Writes `state` once and publishes it atomically under every path in `paths`, in order (the
// first name is replaced first). Throws SaveError naming the path while nothing is published
// (then every file is intact); once the first name holds it, later failures are `problems`.
WrittenCheckpoint write_checkpoint(const c10::IValue& state, const std::vector<std::string>& paths,
                                   const CheckpointMeta* meta = nullptr);

namespace detail {
// The archive of a pickle and the tensor storages it references (record data/<i> for the i-th),
// with its checksum, and the meta record when `meta_text` is not empty. serialize_checkpoint()
// uses it; tests use it to build hostile files.
SerializedCheckpoint assemble_archive(const std::string& pickle, const std::vector<at::Tensor>& storages,
                                      const std::string& meta_text = "");
// The same archive, streamed to `sink` as it is made (write_checkpoint() streams it into the
// file); returns the checksum. An exception from `sink` is thrown again from here.
std::string write_archive(const std::string& pickle, const std::vector<at::Tensor>& storages,
                          const std::string& meta_text, const std::function<void(const void*, size_t)>& sink);
std::string meta_record_text(const CheckpointMeta& meta);
}  // namespace detail

struct LoadedCheckpoint {
  std::string path;
  c10::IValue root;      // a dict with string keys, format_version checked
  std::string checksum;
  size_t bytes = 0;
  std::optional<CheckpointMeta> meta;  // absent in files of trainers that predate it
  double read_seconds = 0;             // read_checkpoint(): reading, verifying and unpickling
};

// Reads and verifies a checkpoint. Throws CheckpointError "PATH: problem" on anything wrong:
// kUnreadable when the file system refuses (missing, EACCES, EIO), kIncompatible for a newer
// format, kDamaged for the rest (empty, not a zip, truncated, checksum mismatch, not a dict).
LoadedCheckpoint read_checkpoint(const std::string& path);
// Only the meta record (the zip directory and one small record, not the tensors); nullopt when
// the file has none. Throws CheckpointError like read_checkpoint.
std::optional<CheckpointMeta> read_checkpoint_meta(const std::string& path);
struct ReadOptions {
  // Always true in the trainer; the fuzzer turns it off to reach the unpickler behind it.
  bool verify_checksum = true;
};
// The same from bytes already in memory; `origin` names them in errors.
LoadedCheckpoint parse_checkpoint(std::string bytes, const std::string& origin, ReadOptions options = {});

}  // namespace resumable
