// Stop requests from the outside world (Slurm's preemption notice, torchrun/mpirun forwarding
// SIGTERM, Ctrl-C). The handler only records the signal; the training loop polls it, the ranks
// agree on the step at which to stop, and rank 0 saves before everyone exits.
#pragma once

namespace resumable {

// Catches SIGTERM, SIGINT, SIGUSR1 and SIGHUP; ignores SIGPIPE and SIGXFSZ (so a file-size limit
// turns into a write error we report, not a silent death). A second SIGINT exits at once (130).
void install_stop_signal_handlers();
// The first stop signal received, or 0.
int pending_stop_signal();
// For tests: forget a recorded signal.
void clear_stop_signal();
const char* signal_name(int signal);

}  // namespace resumable
