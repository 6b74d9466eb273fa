# shellcheck shell=bash
# Helpers of .ci/slurm-up.sh: `source .ci/slurm-lib.sh`.

say() { printf '[slurm-up %(%H:%M:%S)T] %s\n' -1 "$*"; }
die() { say "FAILED: $*"; for f in /var/log/slurm/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 15 "$f"; }; done; exit 1; }
wait_for() {  # wait_for SECONDS WHAT COMMAND...
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || die "$what not up after ${limit}s"
    sleep 1
  done
}

# detached LOG COMMAND...: start a daemon in the background, in its own session, stdin from /dev/null,
# stdout and stderr appended to LOG, and no other file of ours open: it must not hold the caller's
# stdout (`.ci/slurm-up.sh | tail` returns when the script ends, not when the daemons die).
# Its pid is $! (the subshell execs it).
detached() {
  local log=$1; shift
  (
    for fd in /proc/"$BASHPID"/fd/*; do
      fd=${fd##*/}
      if [ "$fd" -gt 2 ]; then { eval "exec $fd>&-"; } 2>/dev/null || true; fi
    done
    exec setsid "$@" </dev/null >>"$log" 2>&1
  ) &
}
