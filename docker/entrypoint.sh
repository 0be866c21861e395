#!/usr/bin/env bash
# The image's entry point, installed as /opt/resumable/bin/resumable (on PATH):
#   resumable [--config FILE] [trainer flags...]   one process; under `srun --container-image`
#                                                  each task is one rank (Slurm's variables)
#   resumable mpirun N [trainer flags...]          N ranks on this node (launch/mpirun-1node.sh)
#   resumable ckpt|predict ...                     the trainer's tools, arguments untouched
#   resumable COMMAND [ARGS...]                    anything else runs as it is (e.g. bash)
#
# Paths never depend on the working directory (Apptainer and enroot/pyxis start in the host's):
# for training and --eval, a missing --data becomes $RESUMABLE_DATA (the dictionary inside the
# image) and a missing --run-dir becomes $RESUMABLE_RUNS/<config name> (mount a volume there),
# unless the config file sets "data" / "run_dir" itself. A relative --config that does not exist
# in the working directory is taken from the image (/opt/resumable/configs/tiny.json for
# configs/tiny.json).
#
# Signals: `docker stop` / `podman stop` send SIGTERM to PID 1, which in a container has no
# default action. Both paths below exec a process that handles it: the trainer installs its own
# handlers (save, exit 75), and the mpirun script traps it and passes one SIGUSR1 to mpirun.
set -euo pipefail
app=/opt/resumable
: "${RESUMABLE_DATA:=$app/share/cmudict.dict}" "${RESUMABLE_RUNS:=/runs}"

# Prints the trainer arguments with the defaults above filled in, one per line.
with_defaults() {
  local args=("$@") config="" i has_data=0 has_run_dir=0
  for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
      --config) config=${args[i + 1]:-}; [ -n "$config" ] && args[i + 1]=$(resolve_config "$config") && config=${args[i + 1]} ;;
      --config=*) config=$(resolve_config "${args[i]#--config=}"); args[i]=--config=$config ;;
      --data | --data=*) has_data=1 ;;
      --run-dir | --run-dir=* | --run_dir | --run_dir=*) has_run_dir=1 ;;
    esac
  done
  if [ -n "$config" ] && [ -f "$config" ]; then
    grep -q '"data"[[:space:]]*:' "$config" && has_data=1
    grep -q '"run_dir"[[:space:]]*:' "$config" && has_run_dir=1
  fi
  # The trainer names a run after its config file's stem (runs/<stem>), "default" without one.
  local name=default
  if [ -n "$config" ]; then name=${config##*/}; [[ $name == ?*.* ]] && name=${name%.*}; fi
  [ "$has_data" = 1 ] || args+=(--data "$RESUMABLE_DATA")
  [ "$has_run_dir" = 1 ] || args+=(--run-dir "$RESUMABLE_RUNS/$name")
  printf '%s\n' "${args[@]}"
}

resolve_config() {
  if [[ $1 != /* ]] && [ ! -e "$1" ] && [ -f "$app/$1" ]; then echo "$app/$1"; else echo "$1"; fi
}

# Help, version and config printing need no paths; the tools take their own arguments.
wants_defaults() {
  local a
  for a in "$@"; do case "$a" in -h | --help | --version) return 1 ;; esac; done
}

case "${1:-}" in
  ckpt | predict)
    exec "$app/bin/trainer" "$@" ;;
  mpirun)
    n=${2:?usage: resumable mpirun N [trainer flags...]}; shift 2
    args=("$@"); wants_defaults "$@" && mapfile -t args < <(with_defaults "$@")
    exec "$app/launch/mpirun-1node.sh" "$n" ${args[@]+"${args[@]}"} ;;
  "" | -*)
    args=("$@"); wants_defaults "$@" && mapfile -t args < <(with_defaults "$@")
    exec "$app/bin/trainer" ${args[@]+"${args[@]}"} ;;
  *)
    exec "$@" ;;
esac
