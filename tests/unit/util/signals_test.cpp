#include "resumable/util/signals.h"

#include <gtest/gtest.h>

#include <csignal>
#include <string>

using namespace resumable;

namespace {

void (*disposition(int sig))(int) {
  struct sigaction old;
  sigaction(sig, nullptr, &old);
  return old.sa_handler;
}

}  // namespace

// Death tests fork: each case installs the handlers in a child of its own.
TEST(StopSignals, ASignalIgnoredAtStartStaysIgnored) {
  EXPECT_EXIT(
      {
        std::signal(SIGHUP, SIG_IGN);  // what nohup does
        install_stop_signal_handlers();
        bool ok = disposition(SIGHUP) == SIG_IGN && disposition(SIGTERM) != SIG_DFL;
        stop_signals_become_requests();
        std::raise(SIGHUP);
        std::_Exit(ok && pending_stop_signal() == 0 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(StopSignals, BeforeTrainingAStopExitsAtOnceWith75) {
  EXPECT_EXIT(
      {
        install_stop_signal_handlers();
        std::raise(SIGTERM);
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(75), "stopped by SIGTERM before training started");
}

TEST(StopSignals, DuringTrainingAStopIsARequest) {
  EXPECT_EXIT(
      {
        install_stop_signal_handlers();
        stop_signals_become_requests();
        std::raise(SIGUSR1);
        std::raise(SIGTERM);  // the first one counts
        std::_Exit(pending_stop_signal() == SIGUSR1 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

// mpirun forwards SIGUSR2 as it does SIGUSR1: a stray one must save and stop, not kill the run.
TEST(StopSignals, SigUsr2IsAStopRequestLikeTheOthers) {
  EXPECT_EXIT(
      {
        std::signal(SIGUSR2, SIG_DFL);
        install_stop_signal_handlers();
        stop_signals_become_requests();
        std::raise(SIGUSR2);
        std::_Exit(pending_stop_signal() == SIGUSR2 && std::string(signal_name(SIGUSR2)) == "SIGUSR2" ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(StopSignals, ASecondCtrlCExitsUnsaved) {
  EXPECT_EXIT(
      {
        // SIGINT at its default, as at a terminal: tests started in the background by a shell
        // without job control inherit it ignored, and an ignored SIGINT rightly stays ignored.
        std::signal(SIGINT, SIG_DFL);
        install_stop_signal_handlers();
        stop_signals_become_requests();
        std::raise(SIGINT);
        std::raise(SIGINT);
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(130), "second SIGINT");
}
