#include "resumable/util/signals.h"

#include <atomic>
#include <csignal>
#include <cstring>
#include <initializer_list>
#include <unistd.h>

#include "resumable/util/errors.h"

namespace resumable {
namespace {

std::atomic<int> g_signal{0};
std::atomic<bool> g_requests{false};  // false: start-up phase, a stop signal exits at once

void say(const char* a, const char* b) {
  (void)!::write(2, a, std::strlen(a));
  (void)!::write(2, b, std::strlen(b));
}

void on_stop_signal(int sig) {
  int expected = 0;
  bool first = g_signal.compare_exchange_strong(expected, sig);
  if (!g_requests.load()) {
    // Only async-signal-safe calls here: write(2) and _exit(2).
    say("trainer: stopped by ", signal_name(sig));
    say(" before training started: nothing new to save (exit 75, resume to continue)", "\n");
    ::_exit(exit_code::kStoppedBySignal);
  }
  if (!first && sig == SIGINT && expected == SIGINT) {
    say("second SIGINT: exiting without saving", "\n");
    ::_exit(130);
  }
}

}  // namespace

void install_stop_signal_handlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGHUP}) {
    struct sigaction old;
    // A signal ignored by whoever started us (nohup, `trap '' HUP`) stays ignored, as POSIX
    // programs are expected to do.
    if (sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    sigaction(sig, &sa, nullptr);
  }
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGXFSZ, SIG_IGN);
}

void stop_signals_become_requests() { g_requests.store(true); }
int pending_stop_signal() { return g_signal.load(); }
void clear_stop_signal() { g_signal.store(0); }

const char* signal_name(int sig) {
  switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    case SIGHUP: return "SIGHUP";
    default: return "signal";
  }
}

}  // namespace resumable
