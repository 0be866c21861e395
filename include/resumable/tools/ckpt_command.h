// `trainer ckpt SUBCOMMAND ...`: checkpoint tools that need no training set-up.
//   verify FILE...   integrity (checksum), layout, and that model and optimizer states load into
//                    the saved architecture; exit 0 only if every file is good.
#pragma once

namespace resumable {

// argv[0] is "ckpt". Returns the exit code.
int run_ckpt_command(int argc, char** argv);

}  // namespace resumable
