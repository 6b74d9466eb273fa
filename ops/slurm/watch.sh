#!/bin/bash
# Follow the runs root: poll SLURM (one sacct call), print the status table, optionally rerun failed
# and preempted runs (within their retry limit), until nothing is submitted or running any more.
#
#   ops/slurm/watch.sh [SECONDS] [--rerun-failed]        # default every 300 s
#
# Log: $LW_RUNS/.logs/watch-<time>.log, timestamped.
set -uo pipefail
# shellcheck source=ops/slurm/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

interval=300
rerun=0
for arg in "$@"; do
  case $arg in
    --rerun-failed) rerun=1 ;;
    ''|*[!0-9]*) echo "usage: ops/slurm/watch.sh [SECONDS] [--rerun-failed]" >&2; exit 2 ;;
    *) interval=$arg ;;
  esac
done
lw_log "${LW_RUNS:-runs}/.logs/watch-$(date +%Y%m%d-%H%M%S).log" || exit 1

while true; do
  lw_cli lw-registry --status
  if (( rerun )); then
    lw_cli lw-registry --rerun-failed --no-poll
  fi
  active=$(lw_cli lw-registry --list pending,submitted,running --limit 0 --no-poll | head -n 1)
  lw_say "$active"
  if [[ $active == "0 run(s)"* ]]; then
    lw_say "nothing left to wait for"
    exit 0
  fi
  sleep "$interval"
done
