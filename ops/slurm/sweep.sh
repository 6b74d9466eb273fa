#!/bin/bash
# Submit a plan (a grid of lw commands) as SLURM array jobs, with a timestamped log of the submission.
#
#   ops/slurm/sweep.sh PLAN [lw-registry submit options...]
#   ops/slurm/sweep.sh ops/slurm/plans/demo.yaml --profile ops/slurm/profiles/mine.toml --wait
#   ops/slurm/sweep.sh plan.yaml --backend local          # the same plan on this machine
#
# Completed runs are skipped, so re-running a sweep after fixing a failure submits only what is left.
# Log: $LW_RUNS/.logs/sweep-<time>-<plan>.log (each run's own log is <run_dir>/job.log).
set -uo pipefail
# shellcheck source=ops/slurm/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ $# -lt 1 ]]; then
  echo "usage: ops/slurm/sweep.sh PLAN [lw-registry submit options...]" >&2
  exit 2
fi
plan=$1
shift
name=$(basename "$plan")
lw_log "${LW_RUNS:-runs}/.logs/sweep-$(date +%Y%m%d-%H%M%S)-${name%.*}.log" || exit 1
lw_say "submitting $plan from $(hostname) at $(git rev-parse --short HEAD 2>/dev/null || echo 'no git')"
lw_cli lw-registry submit "$plan" --backend slurm "$@"
rc=$?
lw_say "lw-registry submit exited $rc"
lw_cli lw-registry --status --plan "${name%.*}" --no-poll
exit "$rc"
