import importlib.util
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
