#!/usr/bin/env bash
# Single-node restart wrapper, the way torchrun's --max-restarts is used:
#   launch/run-with-restarts.sh MAX_RESTARTS COMMAND...
#   e.g. launch/run-with-restarts.sh 3 launch/mpirun-1node.sh 2 --config configs/base.json
# Relaunches COMMAND after a crash (any exit but 0, 2, 69, 74, 75; 76 is a lost rank whose
# survivors saved the last step they completed) up to MAX_RESTARTS times, after
# RESTART_DELAY_S seconds (default 2); each launch resumes from the newest good checkpoint by itself
# (--resume auto). It stops on
#   0  done            2  bad config/data (a restart cannot help)
#   74 cannot save     75 stopped by a signal (someone asked it to stop; requeue elsewhere)
# and on 69 (another job holds the run directory's lock: the old job of a requeue still saving, a
# lock the NFS server has not yet dropped) relaunches after LOCK_RETRY_DELAY_S seconds (default 30),
# up to LOCK_RETRIES times (default 10), which MAX_RESTARTS does not count; then it exits 69.
# The exit code is rank 0's (RESUMABLE_EXIT_FILE) where the launcher hides it (torchrun exits 1).
# Signals: COMMAND runs in a session of its own with stdin from /dev/null, so a terminal's Ctrl-C
# or hangup reaches only this wrapper, and every SIGTERM/SIGINT/SIGHUP/SIGUSR1/SIGUSR2 the wrapper gets is
# passed to COMMAND exactly once: one Ctrl-C is one SIGINT, the ranks save and exit 75 (a second
# Ctrl-C is the trainer's "exit now"). A stop signal during the restart delay ends the wrapper at
# once with 75 and no relaunch: the last checkpoint is where the next run resumes.
set -uo pipefail
max=${1:?usage: run-with-restarts.sh MAX_RESTARTS COMMAND...}; shift
[ $# -gt 0 ] || { echo "run-with-restarts: no command" >&2; exit 2; }

. "$(dirname "$0")/supervise.sh"  # use_exit_file, exit_code_of_rank0

child=0   # COMMAND's pid while it runs
stop=     # the stop signal received, if any
on_signal() {
  stop=$1
  [ "$child" -ne 0 ] && kill -s "$1" "$child" 2>/dev/null
}
for sig in TERM INT HUP USR1 USR2; do trap "on_signal $sig" "$sig"; done

attempt=0
lock_retries=0
while :; do
  use_exit_file
  # A non-interactive shell starts background commands with SIGINT and SIGQUIT ignored, and an
  # ignored signal stays ignored in the trainer: restore them (unless ignored when we started).
  ( trap - INT QUIT; exec setsid "$@" </dev/null ) &
  child=$!
  # wait returns early when a trapped signal arrives: keep waiting for the child's own exit.
  while :; do
    wait "$child"; code=$?
    kill -0 "$child" 2>/dev/null || break
  done
  child=0
  code=$(exit_code_of_rank0 "$code")
  case $code in
    0|2|74|75) exit "$code" ;;
  esac
  if [ "$code" -eq 69 ]; then
    if [ -n "$stop" ] || [ "$lock_retries" -ge "${LOCK_RETRIES:-10}" ]; then
      echo "run-with-restarts: the run directory is still in use by another job after $lock_retries retries, exit 69" >&2
      exit 69
    fi
    lock_retries=$((lock_retries + 1))
    delay=${LOCK_RETRY_DELAY_S:-30}
    echo "run-with-restarts: exit 69 (run directory in use by another job), retry $lock_retries/${LOCK_RETRIES:-10} in ${delay}s" >&2
  else
    if [ -n "$stop" ] || [ "$attempt" -ge "$max" ]; then
      echo "run-with-restarts: giving up after $attempt restart(s), last exit $code" >&2
      exit "$code"
    fi
    attempt=$((attempt + 1))
    delay=${RESTART_DELAY_S:-2}
    echo "run-with-restarts: exit $code, restart $attempt/$max in ${delay}s (resumes from the last checkpoint)" >&2
  fi
  # An interruptible delay: wait returns as soon as a stop signal arrives.
  sleep "$delay" &
  sleeper=$!
  wait "$sleeper"
  kill "$sleeper" 2>/dev/null
  if [ -n "$stop" ]; then
    echo "run-with-restarts: SIG$stop during the restart delay: not relaunching, exit 75 (resume from the last checkpoint)" >&2
    exit 75
  fi
done
