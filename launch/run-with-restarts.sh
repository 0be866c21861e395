#!/usr/bin/env bash
# Single-node restart wrapper, the way torchrun's --max-restarts is used:
#   launch/run-with-restarts.sh MAX_RESTARTS COMMAND...
#   e.g. launch/run-with-restarts.sh 3 launch/mpirun-1node.sh 2 --config configs/base.json
# Relaunches COMMAND after a crash (any exit but 0, 2, 74, 75) up to MAX_RESTARTS times; each
# launch resumes from the newest good checkpoint by itself (--resume auto). It stops on
#   0  done            2  bad config/data (a restart cannot help)
#   74 cannot save     75 stopped by a signal (someone asked it to stop; requeue elsewhere)
# SIGTERM/SIGINT/SIGUSR1 sent to the wrapper are passed to COMMAND, which saves and exits 75.
set -uo pipefail
max=${1:?usage: run-with-restarts.sh MAX_RESTARTS COMMAND...}; shift
[ $# -gt 0 ] || { echo "run-with-restarts: no command" >&2; exit 2; }
child=0
forward() { [ "$child" -ne 0 ] && kill -s "$1" "$child" 2>/dev/null; }
for s in TERM INT USR1; do trap "forward $s; stopping=1" "$s"; done
stopping=0
attempt=0
while :; do
  "$@" &
  child=$!
  # wait returns early when a trapped signal arrives: keep waiting for the child's own exit.
  while :; do
    wait "$child"; code=$?
    kill -0 "$child" 2>/dev/null || break
  done
  child=0
  case $code in
    0|2|74|75) exit "$code" ;;
  esac
  if [ "$stopping" -eq 1 ] || [ "$attempt" -ge "$max" ]; then
    echo "run-with-restarts: giving up after $attempt restart(s), last exit $code" >&2
    exit "$code"
  fi
  attempt=$((attempt + 1))
  echo "run-with-restarts: exit $code, restart $attempt/$max (resumes from the last checkpoint)" >&2
  sleep "${RESTART_DELAY_S:-2}"
done
