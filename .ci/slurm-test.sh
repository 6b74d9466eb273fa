#!/usr/bin/env bash
# CI step: start a real single-node SLURM (.ci/slurm-up.sh, as root) and run the tests marked `slurm`:
# lw-registry end to end against it, and lw-train with 2 processes per run. The two modules run at the
# same time (most of their time is SLURM's requeue hold and time limits). Where SLURM cannot be
# started (not root, no apt), the step says why and passes, unless LW_SLURM_REQUIRED=1.
set -uo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

if ! .ci/slurm-up.sh; then
  msg="real-SLURM step skipped: SLURM could not be started here (see the lines above)"
  if [ "${LW_SLURM_REQUIRED:-0}" = 1 ]; then echo "$msg; LW_SLURM_REQUIRED=1"; exit 1; fi
  echo "$msg"; exit 0
fi

logs=$(mktemp -d)
modules=(packages/lw-registry/tests/test_real_slurm.py packages/lw-bridge/tests/test_slurm_processes.py)
pids=()
for module in "${modules[@]}"; do
  LW_SLURM_TESTS=1 OMP_NUM_THREADS=1 uv run pytest -m slurm -p no:cacheprovider -q -rs "$module" "$@" \
    >"$logs/$(basename "$module").log" 2>&1 &
  pids+=($!)
done
rc=0
for i in "${!modules[@]}"; do
  wait "${pids[$i]}" || rc=1
  echo "--- ${modules[$i]}"; cat "$logs/$(basename "${modules[$i]}").log"
done
echo "real-SLURM step: $([ $rc = 0 ] && echo passed || echo FAILED) in $((SECONDS - start)) s"
exit $rc
