#!/usr/bin/env bash
# One node, N ranks under torchrun:   launch/torchrun-1node.sh N [trainer flags...]
# torchrun forwards SIGTERM/SIGINT (and, with --signals-to-handle, SIGUSR1) to every worker; the
# trainer saves and exits 75. With --max-restarts (MAX_RESTARTS, default 0) torchrun relaunches
# crashed workers and they resume from the last checkpoint on their own (--resume auto).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
n=${1:?usage: torchrun-1node.sh N [trainer flags...]}; shift
exec "${TORCHRUN:-$here/.venv/bin/torchrun}" --standalone --nproc-per-node "$n" \
  --max-restarts "${MAX_RESTARTS:-0}" --signals-to-handle SIGTERM,SIGINT,SIGUSR1 \
  --no-python "${TRAINER:-$here/build/trainer}" "$@"
