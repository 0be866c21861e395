#!/usr/bin/env bash
# Several nodes under torchrun; run the same command on every node:
#   launch/torchrun-multinode.sh NODES RANKS_PER_NODE RDZV_HOST:PORT JOB_ID [trainer flags...]
# c10d rendezvous on RDZV_HOST (any one node); torchrun's agent hosts the store and the trainer
# joins it as a client (TORCHELASTIC_USE_AGENT_STORE). Run directory on a shared file system.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
nodes=${1:?usage: torchrun-multinode.sh NODES RANKS_PER_NODE HOST:PORT JOB_ID [trainer flags...]}
per_node=${2:?}; endpoint=${3:?}; job=${4:?}; shift 4
exec "${TORCHRUN:-$here/.venv/bin/torchrun}" --nnodes "$nodes" --nproc-per-node "$per_node" \
  --rdzv-backend c10d --rdzv-endpoint "$endpoint" --rdzv-id "$job" \
  --max-restarts "${MAX_RESTARTS:-0}" --signals-to-handle SIGTERM,SIGINT,SIGUSR1 \
  --no-python "${TRAINER:-$here/build/trainer}" "$@"
