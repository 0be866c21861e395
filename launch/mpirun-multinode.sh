#!/usr/bin/env bash
# Several nodes under OpenMPI:   launch/mpirun-multinode.sh HOSTFILE RANKS_PER_NODE [trainer flags...]
# HOSTFILE lists one node per line ("node1 slots=8"). The run directory must be on a file system
# every node sees (every rank loads the same checkpoint). Rank 0 broadcasts its TCPStore address
# over MPI; set MASTER_ADDR to pin the interface, GLOO_SOCKET_IFNAME / NCCL_SOCKET_IFNAME to pick NICs.
# Signals as in mpirun-1node.sh: the first stop signal (a terminal's Ctrl-C included) becomes one
# SIGUSR1 to mpirun, which passes it to every rank on every node; the ranks save and exit 75.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
hostfile=${1:?usage: mpirun-multinode.sh HOSTFILE RANKS_PER_NODE [trainer flags...]}
per_node=${2:?ranks per node}; shift 2
nodes=$(grep -cv '^\s*\(#\|$\)' "$hostfile")
root_flag=(); [ "$(id -u)" -eq 0 ] && root_flag=(--allow-run-as-root)

. "$here/launch/supervise.sh"
supervise USR1 mpirun "${root_flag[@]}" --hostfile "$hostfile" -np $((nodes * per_node)) \
  --npernode "$per_node" --bind-to none --mca odls_base_sigkill_timeout "${SIGKILL_TIMEOUT_S:-10}" \
  -x PATH -x LD_LIBRARY_PATH -x MASTER_ADDR -x GLOO_SOCKET_IFNAME -x NCCL_SOCKET_IFNAME \
  "${TRAINER:-$here/build/trainer}" "$@"
