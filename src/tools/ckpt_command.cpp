#include "resumable/tools/ckpt_command.h"

#include <cstdio>
#include <string>

#include "resumable/training/checkpoint_verify.h"
#include "resumable/util/errors.h"

namespace resumable {
namespace {

int verify(int argc, char** argv) {
  if (argc < 1) throw ConfigError("ckpt verify: expected one or more checkpoint files");
  int bad = 0;
  for (int i = 0; i < argc; ++i) {
    try {
      CheckpointSummary s = verify_checkpoint(read_checkpoint(argv[i]));
      std::printf("OK   %s  step %lld, epoch %lld, %.1f MB, %s, saved by %lld rank(s)\n", argv[i],
                  static_cast<long long>(s.global_step), static_cast<long long>(s.epoch), s.bytes / 1e6,
                  s.checksum.c_str(), static_cast<long long>(s.world_size));
    } catch (const CheckpointError& e) {
      std::printf("BAD  %s\n", e.what());
      ++bad;
    }
  }
  return bad == 0 ? exit_code::kDone : exit_code::kRuntimeError;
}

}  // namespace

int run_ckpt_command(int argc, char** argv) {
  std::string sub = argc > 1 ? argv[1] : "";
  if (sub == "verify") return verify(argc - 2, argv + 2);
  throw ConfigError("ckpt: unknown subcommand '" + sub + "' (available: verify FILE...)");
}

}  // namespace resumable
