// Fuzzes the checkpoint reader. The first byte picks the mode: with the checksum check (what the
// trainer does: damaged input must stop there), or without it, so the fuzzer also reaches the zip
// reader, the unpickler and the layout checks behind it, as a forged file with a valid checksum
// would. Anything may be refused with CheckpointError; nothing may crash, hang or allocate wildly.
#include <cstddef>
#include <cstdint>
#include <string>

#include "resumable/checkpoint/checkpoint_file.h"
#include "resumable/checkpoint/checkpoint_state.h"
#include "resumable/training/checkpoint_schema.h"
#include "resumable/util/errors.h"

using namespace resumable;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  ReadOptions options;
  options.verify_checksum = (data[0] & 1) == 0;
  try {
    LoadedCheckpoint ck = parse_checkpoint(std::string(reinterpret_cast<const char*>(data + 1), size - 1), "fuzz.pt", options);
    CheckpointSummary s = summarize_checkpoint(ck);
    // Read every model tensor the way a resume does.
    StateReader model = StateReader(ck.root, ck.path)[ckpt_key::kModel];
    double sum = 0;
    for (const auto& name : model.keys()) sum += model[name].to_tensor().to(at::kDouble).sum().item<double>();
    (void)sum;
    (void)s;
  } catch (const CheckpointError&) {
  }
  return 0;
}
