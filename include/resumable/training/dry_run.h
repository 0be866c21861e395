// `trainer --dry-run` and `trainer --print-config`: what a start with these flags would do, worked
// out as a start works it out and printed, with nothing trained and nothing on disk changed: no run
// directory, lock, checkpoint, metrics or TensorBoard file is created or rewritten, and no
// checkpoint is moved aside (resume_planner.h's preview_resume). The run directory's lock is only
// probed.
//
// Rank 0 of the launch alone works it out and prints; the other ranks exit 0 at once. No process
// group is formed, so a dry run also works in a batch script before `srun`, and sees what rank 0
// of the job would see (its files, this machine's device).
//
// --dry-run prints the plan (launch, run directory and its lock, config and where it came from,
// the resume: file, step, data position, world size, changes, refusals; the schedule, where the
// run stops, the deadline) and a last line saying what a start would do. It exits 0 also when a
// start would be refused: the plan says so, why, and the exit code that start would have.
// --print-config prints only the config the run will use, as JSON: the config saved in the
// checkpoint it resumes when no --config is given, with the command line over it.
#pragma once

#include "resumable/config/cli.h"
#include "resumable/config/config.h"

namespace resumable {

// `cfg`: the --config file (or the defaults) with the command line over it, as main() resolved it.
// Returns the exit code.
int dry_run(const TrainConfig& cfg, const CliArgs& cli);

}  // namespace resumable
