#!/usr/bin/env bash
# One node, N ranks under OpenMPI:   launch/mpirun-1node.sh N [trainer flags...]
#   e.g. launch/mpirun-1node.sh 2 --config configs/base.json
# Ranks find rank 0's TCPStore through MPI; no MASTER_ADDR needed.
# Signals: a stop signal to this script (SIGTERM, SIGINT, SIGHUP, SIGUSR1, a terminal's Ctrl-C)
# becomes one SIGUSR1 to mpirun, which passes it to every rank at once; the ranks agree on a step,
# rank 0 saves, all exit 75, and so does this script. mpirun itself never sees the first
# SIGTERM/SIGINT: it would pass it on as SIGTERM only after its sigkill timeout, SIGKILL the ranks
# one timeout later and exit 1. mpirun runs in a session of its own, so a terminal's Ctrl-C reaches
# only this script. A second SIGTERM/SIGINT/SIGHUP is passed to mpirun as it is (mpirun's own
# abort). After any rank exits non-zero (75 included) mpirun waits twice the sigkill timeout
# (SIGKILL_TIMEOUT_S, default 10) before it exits.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
n=${1:?usage: mpirun-1node.sh N [trainer flags...]}; shift
root_flag=(); [ "$(id -u)" -eq 0 ] && root_flag=(--allow-run-as-root)

. "$here/launch/supervise.sh"
supervise USR1 mpirun "${root_flag[@]}" -np "$n" --oversubscribe --bind-to none \
  --mca odls_base_sigkill_timeout "${SIGKILL_TIMEOUT_S:-10}" \
  "${TRAINER:-$here/build/trainer}" "$@"
