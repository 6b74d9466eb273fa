"""Run directories: resolved config, environment, log file and the run's `run.json` record."""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, is_dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import lw_registry
from lw_registry.files import missing_folders, remove_created
from lw_registry.files import runs_root as runs_root  # the one runs-root reader, re-exported

from lw_core.preemption import PREEMPTED_EXIT_CODE
from lw_core.run_dirs import (
    CONFIG_NAME,
    check_same_config,
    config_hash,
    config_to_dict,
    identity_hash,
    runtime_facts,
    train_budget,
)

LOG_NAME = "log.txt"
_LIBRARIES = ("torch", "transformers", "accelerate", "peft", "safetensors", "numpy", "polars")


def environment(device: str | None = None, dtype: str | None = None) -> dict[str, Any]:
    versions = {}
    for lib in _LIBRARIES + tuple(f"lw-{p}" for p in ("core", "tasks", "bridge", "baselines", "bench", "registry")):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[lib] = metadata.version(lib)
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": platform.node(),
        "git_sha": lw_registry.record.git_sha(),
        "versions": versions,
        **runtime_facts(device, dtype),
    }
    import torch

    env["torch_threads"] = torch.get_num_threads()
    if torch.cuda.is_available():
        env["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return env


def _attach_log_file(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    if not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) for h in root.handlers):
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(console)
    return handler


@contextlib.contextmanager
def _rank_console(rank: int) -> Iterator[None]:
    root = logging.getLogger()
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter(f"[rank {rank}] %(message)s"))
    root.addHandler(console)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(console)


def _log_tail(path: Path, lines: int = 30) -> str | None:
    if not path.is_file():
        return None
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Run:
    """An open run directory. Write results with `write_json`; metrics go into the record on success."""

    dir: Path
    config: Any
    metrics: dict[str, Any]
    artifacts: dict[str, str]

    def path(self, name: str) -> Path:
        return self.dir / name

    def write_json(self, name: str, data: Any) -> Path:
        path = self.dir / name
        lw_registry.write_json_atomic(path, data)
        self.artifacts[Path(name).stem] = name
        return path


@contextlib.contextmanager
def open_run(
    run_dir: str | Path,
    config: Any,
    *,
    name: str,
    task: str | None = None,
    method: str | None = None,
    seed: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    argv: list[str] | None = None,
    rank: int = 0,
) -> Iterator[Run]:
    """Create (or resume) a run directory and track it in `run.json`: running → completed / failed.

    Everything already written in the directory is kept on failure; the record gets the error's
    category and the log's last lines. In a multi-process run only `rank` 0 writes (config, env, log
    file, record); the other ranks get the same `Run` and log to stderr, prefixed with their rank.
    """
    run_dir = Path(run_dir)
    check_same_config(run_dir, config)
    if rank != 0:
        with _rank_console(rank):
            yield Run(dir=run_dir, config=config, metrics={}, artifacts={})
        return
    created = missing_folders(run_dir)
    handler = None
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        resolved = config_to_dict(config)
        lw_registry.write_json_atomic(run_dir / CONFIG_NAME, resolved)
        lw_registry.write_json_atomic(run_dir / "env.json",
                                      environment(device, dtype) | {"train_budget": train_budget(config)})
        handler = _attach_log_file(run_dir / LOG_NAME)
        logging.getLogger("lw").info("run %s: %s", run_dir, json.dumps(resolved, sort_keys=True))
        lw_registry.start_run(
            run_dir,
            name=name,
            argv=list(sys.argv if argv is None else argv),
            config=resolved,
            config_hash=identity_hash(config) if is_dataclass(config) else config_hash(resolved),  # = the dir's hash
            task=task,
            method=method,
            seed=seed,
        )
    except BaseException:  # a start that failed (a full disk) leaves no run dir it created behind
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()
        remove_created(created)
        raise
    run = Run(dir=run_dir, config=config, metrics={}, artifacts={"config": "config.json", "log": LOG_NAME})
    try:
        yield run
    except KeyboardInterrupt:
        lw_registry.fail_run(run_dir, error="interrupted", category="preempted", status="cancelled", exit_code=130,
                             log_tail=_log_tail(run_dir / LOG_NAME))
        raise
    except BaseException as exc:
        status = "preempted" if isinstance(exc, SystemExit) and exc.code == PREEMPTED_EXIT_CODE else "failed"
        if status == "preempted":  # a signal, not a fault: no traceback
            logging.getLogger("lw").warning("run preempted (stopped by a signal): %s keeps what it wrote; "
                                            "the same command resumes", run_dir)
        else:
            # Into the run's log only: the exception goes on to the one place that prints it (`cli_errors`).
            handler.handle(logging.getLogger("lw").makeRecord("lw", logging.ERROR, __file__, 0, "run failed: %s",
                                                              (exc,), None))
            with contextlib.suppress(Exception):
                (run_dir / "traceback.txt").write_text(traceback.format_exc())
        # On a full or read-only disk the record cannot be updated either: the original error is the news.
        with contextlib.suppress(OSError) if isinstance(exc, OSError) else contextlib.nullcontext():
            lw_registry.fail_run(
                run_dir,
                error=f"{type(exc).__name__}: {exc}",
                category=lw_registry.categorize_error(exc) if status == "failed" else "preempted",
                status=status,
                exit_code=PREEMPTED_EXIT_CODE if status == "preempted" else 1,
                log_tail=_log_tail(run_dir / LOG_NAME),
            )
        raise
    else:
        logging.getLogger("lw").info("result: %s", json.dumps(run.metrics, sort_keys=True, default=str))
        lw_registry.finish_run(run_dir, metrics=run.metrics, artifacts=run.artifacts)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
