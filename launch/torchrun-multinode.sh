#!/usr/bin/env bash
# Several nodes under torchrun; run the same command on every node:
#   launch/torchrun-multinode.sh NODES RANKS_PER_NODE RDZV_HOST:PORT JOB_ID [trainer flags...]
# c10d rendezvous on RDZV_HOST (any one node); torchrun's agent hosts the store and the trainer
# joins it as a client (TORCHELASTIC_USE_AGENT_STORE). Run directory on a shared file system.
# Signals as in torchrun-1node.sh: a stop signal to this script (a terminal's Ctrl-C included) is
# passed once to this node's torchrun and on to its workers; the ranks of every node agree on the
# step, rank 0 saves, all exit 75. The exit code is rank 0's where rank 0 runs (RESUMABLE_EXIT_FILE),
# else torchrun's (1 after any stop).
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
nodes=${1:?usage: torchrun-multinode.sh NODES RANKS_PER_NODE HOST:PORT JOB_ID [trainer flags...]}
per_node=${2:?}; endpoint=${3:?}; job=${4:?}; shift 4

. "$here/launch/supervise.sh"
supervise same "${TORCHRUN:-$here/.venv/bin/torchrun}" --nnodes "$nodes" --nproc-per-node "$per_node" \
  --rdzv-backend c10d --rdzv-endpoint "$endpoint" --rdzv-id "$job" \
  --max-restarts "${MAX_RESTARTS:-0}" --signals-to-handle SIGTERM,SIGINT,SIGHUP,SIGUSR1,SIGUSR2 \
  --no-python "${TRAINER:-$here/build/trainer}" "$@"
