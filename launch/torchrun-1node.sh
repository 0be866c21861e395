#!/usr/bin/env bash
# One node, N ranks under torchrun:   launch/torchrun-1node.sh N [trainer flags...]
# With --max-restarts (MAX_RESTARTS, default 0) torchrun relaunches crashed workers and they resume
# from the last checkpoint on their own (--resume auto).
# Signals: SIGTERM, SIGINT, SIGHUP, SIGUSR1 or SIGUSR2 to this script (a terminal's Ctrl-C included) is
# passed once to torchrun, which passes the same signal to every worker at once; the ranks agree on
# a step, rank 0 saves, all exit 75. torchrun runs in a session of its own (and puts its workers in
# sessions of their own), so a terminal's Ctrl-C reaches only this script, never torchrun a second
# time. torchrun itself exits 1 whatever its workers return, so this script exits with rank 0's
# code (RESUMABLE_EXIT_FILE, a temporary file unless the caller set one), else with torchrun's.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
n=${1:?usage: torchrun-1node.sh N [trainer flags...]}; shift

. "$here/launch/supervise.sh"
supervise same "${TORCHRUN:-$here/.venv/bin/torchrun}" --standalone --nproc-per-node "$n" \
  --max-restarts "${MAX_RESTARTS:-0}" --signals-to-handle SIGTERM,SIGINT,SIGHUP,SIGUSR1,SIGUSR2 \
  --no-python "${TRAINER:-$here/build/trainer}" "$@"
