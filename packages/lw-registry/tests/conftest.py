import importlib.util
import json
import sys
from pathlib import Path

import pytest
from lw_registry import cli

HERE = Path(__file__).resolve().parent


def _load_fake_slurm():
    spec = importlib.util.spec_from_file_location("fake_slurm", HERE / "fake_slurm.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fake_slurm", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def root(tmp_path, monkeypatch):
    """An empty runs root as $LW_RUNS, with the working directory in tmp_path."""
    runs = tmp_path / "runs"
    monkeypatch.setenv("LW_RUNS", str(runs))
    monkeypatch.delenv("LW_SLURM_PROFILE", raising=False)
    for var in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "LW_ATTEMPT", "LW_RUN_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return runs


@pytest.fixture
def run_cli(capsys):
    """Run `lw-registry ARGS...` in-process: returns (exit code, stdout, stderr)."""

    def run(*args):
        capsys.readouterr()
        rc = cli.main([str(a) for a in args])
        out, err = capsys.readouterr()
        return rc, out, err

    return run


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    fake = _load_fake_slurm().Cluster(tmp_path / "fake-slurm")
    for key, value in fake.env().items():
        monkeypatch.setenv(key, value)
    return fake


def write_plan(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def fake_run():
    """Write a finished run as an lw CLI leaves it (run.json and env.json) under `root/<name>/seed<S>`:
    `fake_run(root, "lora", 0, 0.8, train_seconds=5.0)`; metrics default to a small trained run's."""

    def write(root: Path, method: str, seed: int, accuracy: float | None, *, task: str = "rt-sentiment",
              status: str = "completed", config: dict | None = None, gpu: str | None = None, name: str | None = None,
              plan: str | None = None, plan_hash: str | None = None, params: dict | None = None,
              finished: str | None = None, **metrics) -> Path:
        from lw_registry.record import RunRecord, write_record

        run_dir = root / (name or method) / f"seed{seed}"
        run_dir.mkdir(parents=True)
        env = {"device": "auto", "cuda_devices": [gpu] if gpu else None, "torch_threads": 2}
        (run_dir / "env.json").write_text(json.dumps(env))
        base = {"trainable_params": 10, "train_seconds": 12.0, "seconds_per_example": 0.02, "majority_rate": 0.58}
        if accuracy is not None:
            base["accuracy"] = accuracy
        write_record(RunRecord(
            id=f"{name or method}-{task}-{seed}", name=method, run_dir=str(run_dir), task=task,
            config={"max_train_examples": 3000, **(config or {})}, method=method, seed=seed, status=status,
            finished_at=finished or f"2026-01-01T00:00:0{seed}", plan=plan, plan_hash=plan_hash,
            params=params or {}, metrics={**base, **metrics}))
        return run_dir

    return write
