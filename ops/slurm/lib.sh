# shellcheck shell=bash
# Helpers for the ops/slurm scripts: `source ops/slurm/lib.sh`.

# lw_stamp: prefix every line of stdin with a timestamp.
lw_stamp() {
  local line
  while IFS= read -r line || [[ -n $line ]]; do
    printf '%(%Y-%m-%dT%H:%M:%S)T %s\n' -1 "$line"
  done
}

# lw_log FILE: from now on this script's stdout and stderr are timestamped and tee'd into FILE
# (appending: a requeued job continues the same log) as well as the terminal / SLURM log.
lw_log() {
  local file=$1
  mkdir -p "$(dirname "$file")" || return 1
  exec > >(lw_stamp | tee -a "$file") 2>&1
}

# lw_say MESSAGE...: one line from the script itself (not the command it runs).
lw_say() { echo "[lw] $*"; }

# lw_cli: how the lw CLIs are invoked (default: `uv run`, from the repository root).
# Override with LW_CLI="" when the virtual environment is already activated.
lw_cli() {
  if [[ -n ${LW_CLI-uv run} ]]; then
    # shellcheck disable=SC2086  # LW_CLI is a command prefix, split on purpose
    ${LW_CLI-uv run} "$@"
  else
    "$@"
  fi
}
