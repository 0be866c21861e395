// `trainer ckpt SUBCOMMAND ...`: checkpoint tools that need no training set-up.
//   verify FILE...   integrity (checksum) and layout of each file; exit 0 only if all are good.
#pragma once

namespace resumable {

// argv[0] is "ckpt". Returns the exit code.
int run_ckpt_command(int argc, char** argv);

}  // namespace resumable
