"""Running tracked runs (prepared by `lw_registry.prepare`), locally or inside a SLURM job.

`run_one` runs one run's command with its output tee'd, timestamped, into `<run_dir>/job.log`, and
settles the record from the exit code when the command did not write it itself (a non-lw command,
or one killed hard). `run_local` runs many with a concurrency limit.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lw_registry.failures import (
    categorize_text,
    killed_category,
    signal_name,
    tail_lines,
)
from lw_registry.plan import describe
from lw_registry.record import (
    ENV_ATTEMPT,
    ENV_RUN_DIR,
    _now,
    edit_record,
    git_sha,
    read_record,
)
from lw_registry.signals import SignalCatcher

JOB_LOG = "job.log"
# SLURM sends SIGTERM at (or a little after) the end time it reports; allow for clock rounding.
TIME_LIMIT_SLACK_S = 5.0


def _env_for(run_dir: Path, attempt: int, extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update({str(k): str(v) for k, v in (extra or {}).items()})
    env[ENV_ATTEMPT] = str(attempt)
    env[ENV_RUN_DIR] = str(run_dir)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _read_metrics_file(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "metrics.json"
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text())
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if isinstance(v, (int, float, str, bool)) or v is None}
    return {}


@dataclass
class Outcome:
    run_dir: Path
    status: str
    exit_code: int | None
    seconds: float
    name: str
    error_category: str | None = None


FORWARDED = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
"""What the executor forwards to its command (SIGUSR1: SLURM's warning before the time limit)."""


def _forward_to(proc: subprocess.Popen[bytes]) -> Callable[[int], None]:
    def forward(_signum: int) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # lw CLIs checkpoint and exit on SIGTERM

    return forward


def run_one(
    run_dir: str | Path,
    *,
    echo: bool = False,
    handle_signals: bool = False,
    requeue: Callable[[], bool] | None = None,
    stop: threading.Event | None = None,
    procs: dict[Path, subprocess.Popen[bytes]] | None = None,
    time_limit_at: float | None = None,
    launcher: list[str] | None = None,
) -> Outcome:
    """Run one registered run's command to its end and settle its record.

    echo: also copy the timestamped output to stdout (a SLURM job's own log).
    handle_signals: forward SIGTERM/SIGUSR1 to the command (main thread only); the run is then
    `preempted`, and on SIGUSR1 `requeue()` is called so SLURM starts it again.
    time_limit_at: when the SLURM job's time limit ends (epoch seconds): a SIGTERM from then on is that
    limit, not a preemption, and the run is `failed/timeout`; so is a SIGUSR1 warning whose requeue is
    refused (attempts used up, or requeue off).
    launcher: an argv prefix that starts the command as several processes (see `job.process_launcher`).
    """
    run_dir = Path(run_dir).resolve()
    start = time.monotonic()
    with edit_record(run_dir) as record:
        record.attempt += 1
        attempt = record.attempt
        record.status, record.started_at, record.finished_at = "running", _now(), None
        record.exit_code = record.error_category = record.error = record.log_tail = None
        record.host = socket.gethostname()
        record.git_sha = record.git_sha or git_sha()
        record.slurm_job_id = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID") or \
            record.slurm_job_id
        record.slurm_array_task_id = os.environ.get("SLURM_ARRAY_TASK_ID") or record.slurm_array_task_id
        record.artifacts[Path(JOB_LOG).stem] = JOB_LOG
        argv = list(record.command or record.argv)
        if attempt > 1:
            argv += record.resume
        argv = [*(launcher or []), *argv]
        timeout, name, extra_env = record.timeout_s, record.name, dict(record.env)
    sigs = SignalCatcher(FORWARDED) if handle_signals else None
    log_path = run_dir / JOB_LOG
    rc: int | None = None
    timed_out = False
    with open(log_path, "a", buffering=1) as log:

        def emit(line: str) -> None:
            stamped = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}"
            log.write(stamped + "\n")
            if echo:
                print(stamped, flush=True)

        emit(f"=== attempt {attempt} on {socket.gethostname()}: {describe(argv)}")
        try:
            proc = subprocess.Popen(argv, cwd=os.getcwd(), env=_env_for(run_dir, attempt, extra_env), stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        except (OSError, ValueError, IndexError) as exc:
            emit(f"cannot start command {describe(argv)}: {exc or type(exc).__name__}")
            proc = None
            rc = 127
        if proc is not None:
            if procs is not None:
                procs[run_dir] = proc
            if sigs is not None:
                sigs.on_signal = _forward_to(proc)
                sigs.install()
            try:
                reader = threading.Thread(target=_pump, args=(proc, emit), daemon=True)
                reader.start()
                deadline = None if not timeout else start + float(timeout)
                while True:
                    try:
                        rc = proc.wait(timeout=0.2)
                        break
                    except subprocess.TimeoutExpired:
                        if deadline is not None and time.monotonic() > deadline and not timed_out:
                            timed_out = True
                            emit(f"=== timeout after {timeout}s: stopping the command")
                            _terminate(proc)
                        if stop is not None and stop.is_set():
                            _terminate(proc)
                reader.join(timeout=5)
            finally:
                if sigs is not None:
                    sigs.restore()
                if procs is not None:
                    procs.pop(run_dir, None)
        received = sigs.received if sigs is not None else None
        if stop is not None and stop.is_set() and received is None:
            received = signal.SIGINT
        killed_by = -rc if rc is not None and rc < 0 else None  # Popen's -N: the shell's 128 + N
        rc = 128 + killed_by if killed_by else rc
        emit(f"=== exit code {rc}" + (f" (killed by {signal_name(killed_by)})" if killed_by else "")
             + (f" after signal {signal.Signals(received).name}" if received else ""))
    outcome = _settle(run_dir, rc, received, timed_out, start, killed_by)
    at_limit = (received == signal.SIGTERM and time_limit_at is not None and sigs is not None
                and (sigs.received_at or 0) >= time_limit_at - TIME_LIMIT_SLACK_S)
    if received == signal.SIGUSR1 and requeue is not None and not requeue():
        outcome = _time_limit(outcome, "time limit warning (SIGUSR1) and not requeued")
    elif at_limit:
        outcome = _time_limit(outcome, "stopped by SIGTERM at the SLURM time limit")
    outcome.name = name
    return outcome


def _pump(proc: subprocess.Popen[bytes], emit: Callable[[str], None]) -> None:
    assert proc.stdout is not None
    for raw in iter(proc.stdout.readline, b""):
        emit(raw.decode(errors="replace").rstrip("\n"))


def _terminate(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def _settle(run_dir: Path, rc: int | None, received: int | None, timed_out: bool, start: float,
            killed_by: int | None = None) -> Outcome:
    tail = tail_lines(run_dir / JOB_LOG, 30)
    with edit_record(run_dir) as record:
        if rc is not None:
            record.exit_code = rc
        if record.status in ("running", "pending", "submitted"):
            # The command did not settle its own record: decide from how it ended.
            record.finished_at = _now()
            if received in (signal.SIGTERM, signal.SIGUSR1):
                record.status, record.error_category = "preempted", "preempted"
                record.error = f"stopped by {signal.Signals(received).name}"
            elif received == signal.SIGINT:
                record.status, record.error_category, record.error = "cancelled", "other", "interrupted"
            elif timed_out:
                record.status, record.error_category = "failed", "timeout"
                record.error = f"timed out after {record.timeout_s}s"
            elif rc == 0:
                record.status = "completed"
                if not record.metrics:
                    record.metrics = _read_metrics_file(run_dir)
            elif killed_by:
                record.status, record.error_category = "failed", killed_category(tail)
                record.error = f"killed by {signal_name(killed_by)} (exit code {rc})"
            else:
                record.status, record.error_category = "failed", categorize_text(tail)
                record.error = f"exit code {rc}"
        elif record.status == "failed" and timed_out:
            record.error_category = "timeout"
        if record.status != "completed" and not record.log_tail:
            record.log_tail = tail
        status, exit_code, category = record.status, record.exit_code, record.error_category
    return Outcome(run_dir, status, exit_code, time.monotonic() - start, "", category)


def _time_limit(outcome: Outcome, why: str) -> Outcome:
    """A run stopped for good by its time limit is `failed/timeout` (retried by --rerun-failed within its
    attempts), not `preempted`, whether the wrapper or the command itself wrote `preempted`."""
    with edit_record(outcome.run_dir) as record:
        if record.status in ("preempted", "running"):
            record.status, record.error_category, record.error = "failed", "timeout", why
            record.finished_at = record.finished_at or _now()
            outcome.status, outcome.error_category = record.status, record.error_category
    return outcome


def run_local(
    run_dirs: Iterable[Path], *, concurrency: int = 1, report: Callable[[Outcome, int, int], None] | None = None
) -> list[Outcome]:
    """Run registered runs as subprocesses on this machine, at most `concurrency` at once."""
    run_dirs = list(run_dirs)
    stop = threading.Event()
    procs: dict[Path, subprocess.Popen[bytes]] = {}
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = [pool.submit(run_one, d, stop=stop, procs=procs) for d in run_dirs]
        try:
            for future in as_completed(futures):
                outcome = future.result()
                outcomes.append(outcome)
                if report is not None:
                    report(outcome, len(outcomes), len(run_dirs))
        except KeyboardInterrupt:
            stop.set()
            for f in futures:
                f.cancel()
            for proc in list(procs.values()):
                _terminate(proc, grace=5)
            for d in run_dirs:  # queued but never started: they were asked to stop too
                with contextlib.suppress(Exception):
                    rec = read_record(d)
                    if rec.status in ("pending", "submitted"):
                        with edit_record(d) as r:
                            r.status, r.error = "cancelled", "interrupted before it started"
            raise
    return outcomes

