// Stop requests from the outside world (Slurm's preemption notice, torchrun/mpirun forwarding
// SIGTERM, Ctrl-C). Two phases:
//   - start-up (launch, rendezvous, data loading, the resume decision): there is nothing new to
//     save yet, so a stop signal ends the process at once with exit 75 (resume to continue), even
//     while it is blocked waiting for peers or for input;
//   - training and evaluation: the handler only records the signal; the loop polls it, the ranks
//     agree on the step at which to stop, and rank 0 saves before everyone exits.
#pragma once

namespace resumable {

// Catches SIGTERM, SIGINT, SIGUSR1, SIGUSR2 and SIGHUP (mpirun forwards both USR signals; a stray
// one must not kill the run unsaved), except those already ignored when the process
// started (nohup's SIGHUP stays ignored); ignores SIGPIPE and SIGXFSZ (so a file-size limit turns
// into a write error we report, not a silent death). A second SIGINT exits at once (130).
// Starts in the start-up phase.
void install_stop_signal_handlers();
// From here on a stop signal is a request the training loop acts on (see above).
void stop_signals_become_requests();
// The first stop signal received, or 0.
int pending_stop_signal();
// For tests: forget a recorded signal.
void clear_stop_signal();
const char* signal_name(int signal);

}  // namespace resumable
