# Sourced by the launch scripts (not run by itself): how a script runs a launcher under it.
#
#   supervise FIRST COMMAND...
#
# Runs COMMAND in a session of its own, so a terminal's Ctrl-C (or hangup) reaches only the script,
# and passes each SIGTERM/SIGINT/SIGHUP/SIGUSR1/SIGUSR2 the script gets on to COMMAND exactly once: the
# first as FIRST (mpirun wants SIGUSR1: it forwards that at once, but SIGTERM/SIGINT only after its
# sigkill timeout) or as it came ("same"), later ones as they came. SIGINT and SIGQUIT are restored
# for COMMAND: a script starts its background commands with them ignored, and the trainer keeps
# ignored signals ignored. Exits with rank 0's exit code (RESUMABLE_EXIT_FILE, see use_exit_file)
# where COMMAND hides it (torchrun exits 1 whatever its workers return), else with COMMAND's.

# Makes rank 0 write its exit code to $RESUMABLE_EXIT_FILE (a temporary file unless the caller set
# one, as an enclosing script does) and clears it before each launch.
use_exit_file() {
  if [ -z "${RESUMABLE_EXIT_FILE:-}" ]; then
    RESUMABLE_EXIT_FILE=$(mktemp "${TMPDIR:-/tmp}/resumable-exit.XXXXXX")
    trap 'rm -f "$RESUMABLE_EXIT_FILE"' EXIT
  fi
  export RESUMABLE_EXIT_FILE
  rm -f "$RESUMABLE_EXIT_FILE"
}

# Rank 0's code where it wrote one, else $1.
exit_code_of_rank0() {
  if [ -s "$RESUMABLE_EXIT_FILE" ]; then cat "$RESUMABLE_EXIT_FILE"; else echo "$1"; fi
}

supervise() {
  local first=$1; shift
  use_exit_file
  supervised=0
  supervise_stops=0
  supervise_first=$first
  for sig in TERM INT HUP USR1 USR2; do trap "supervise_forward $sig" "$sig"; done
  ( trap - INT QUIT; exec setsid "$@" ) &
  supervised=$!
  local code
  while :; do
    wait "$supervised"; code=$?
    kill -0 "$supervised" 2>/dev/null || break  # a trapped signal ended the wait, not the child
  done
  exit "$(exit_code_of_rank0 "$code")"
}

supervise_forward() {
  supervise_stops=$((supervise_stops + 1))
  local sig=$1
  [ "$supervise_stops" -eq 1 ] && [ "$supervise_first" != same ] && sig=$supervise_first
  [ "$supervised" -ne 0 ] && kill -s "$sig" "$supervised" 2>/dev/null
}
