#!/usr/bin/env bash
# One node, N ranks under OpenMPI:   launch/mpirun-1node.sh N [trainer flags...]
#   e.g. launch/mpirun-1node.sh 2 --config configs/base.json
# Ranks find rank 0's TCPStore through MPI; no MASTER_ADDR needed. Preemption: send SIGUSR1 to
# mpirun (forwarded to every rank at once); the ranks agree on a step, rank 0 saves, all exit 75.
# SIGTERM/SIGINT also work: the sigkill timeout (SIGKILL_TIMEOUT_S, default 60) gives the ranks a
# minute to save before SIGKILL. mpirun also waits that long before it exits after a rank crashed.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
n=${1:?usage: mpirun-1node.sh N [trainer flags...]}; shift
root_flag=(); [ "$(id -u)" -eq 0 ] && root_flag=(--allow-run-as-root)
exec mpirun "${root_flag[@]}" -np "$n" --oversubscribe --bind-to none \
  --mca odls_base_sigkill_timeout "${SIGKILL_TIMEOUT_S:-60}" \
  "${TRAINER:-$here/build/trainer}" "$@"
