"""Faults a user meets (issue 36): each is one line naming the path or value, printed once, and loses
nothing already written; a failed start leaves no run dir behind; a run dir refuses another config."""

from __future__ import annotations

import errno
import json
import logging
import os
from dataclasses import dataclass, field

import lw_registry
import pytest
import torch
from lw_core import storage
from lw_core.config import build_config
from lw_core.errors import LwError, cli_errors
from lw_core.models import cache_dir, resolve_model_source
from lw_core.run_dirs import completed_metrics
from lw_core.runs import open_run
from lw_core.training import cosine_schedule, find_training_state, load_training_state, save_training_state
from lw_registry import read_record

FULL = "No space left on device"


def _one_line_exit(capsys, main) -> str:
    """Run a `cli_errors` entry point that must fail; its stderr, which must be one line."""
    with pytest.raises(SystemExit) as stopped:
        cli_errors(main)()
    assert stopped.value.code != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.strip()


def _optimizer():
    layer = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=0.1)
    return layer, optimizer, cosine_schedule(optimizer, 10, 0.2)


# ---- 1: the disk fills during a checkpoint save -------------------------------------------------
def _full_disk_safetensors(*args, **kwargs):
    raise Exception(f"Error while serializing: I/O error: {FULL} (os error 28)")  # safetensors' own type


class _FullFile:
    """A file on a disk that fills up: what `write` gets is refused, as the OS refuses it (no file name)."""

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, data):
        raise OSError(errno.ENOSPC, FULL)


@pytest.mark.parametrize("where", ["tensors", "optimizer"])
def test_a_disk_filling_during_a_checkpoint_is_one_line_and_keeps_the_previous_one(tmp_path, monkeypatch, capsys,
                                                                                   where):
    layer, optimizer, scheduler = _optimizer()
    last = tmp_path / "last"
    save_training_state(last, optimizer, scheduler, {"step": 1}, tensors={"w": layer.weight})
    if where == "tensors":
        monkeypatch.setattr("safetensors.torch.save_file", _full_disk_safetensors)
    else:
        monkeypatch.setattr(storage, "open", _FullFile, raising=False)

    def main():
        save_training_state(last, optimizer, scheduler, {"step": 2}, tensors={"w": layer.weight})

    err = _one_line_exit(capsys, main)
    name = "trainable.safetensors" if where == "tensors" else "optimizer.pt"
    assert err == f"error: cannot write {tmp_path / 'last.tmp' / name}: {FULL}"
    assert not (tmp_path / "last.tmp").exists()  # the half-written checkpoint does not hold on to the space
    monkeypatch.undo()
    assert find_training_state(last) == last
    assert load_training_state(last, optimizer, scheduler).state == {"step": 1}


# ---- 4: the disk is already full ------------------------------------------------------------------
@dataclass
class _Config:
    steps: int = 3
    lr: float = 0.1
    output_dir: str | None = None
    added_later: list[int] = field(default_factory=list)


def test_a_start_on_a_full_disk_names_the_file_and_leaves_no_run_dir(tmp_path, monkeypatch, capsys):
    (tmp_path / "runs").mkdir()
    run_dir = tmp_path / "runs" / "task" / "method" / "seed0-abc"
    real_write = lw_registry.write_json_atomic

    def full_at_the_record(path, data):  # config.json, env.json and the lock are written, the record is not
        if path.name == "run.json":
            raise OSError(errno.ENOSPC, FULL, str(path))
        real_write(path, data)

    monkeypatch.setattr(lw_registry.record.tempfile, "mkstemp",
                        lambda **kw: (_ for _ in ()).throw(OSError(errno.ENOSPC, FULL)))

    def main():
        with open_run(run_dir, _Config(), name="t"):
            raise AssertionError("the run must not start")

    err = _one_line_exit(capsys, main)
    assert err == f"error: cannot write {run_dir / 'config.json'}: {FULL}"
    assert os.listdir(tmp_path / "runs") == []  # neither the run dir nor the folders made for it
    monkeypatch.undo()

    monkeypatch.setattr(lw_registry.record, "write_json_atomic", full_at_the_record)
    assert _one_line_exit(capsys, main) == f"error: cannot write {run_dir / 'run.json'}: {FULL}"
    assert os.listdir(tmp_path / "runs") == []  # no lock-only run dir either


def test_a_failed_start_in_an_existing_run_dir_removes_nothing(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    with open_run(run_dir, _Config(), name="t") as run:
        run.write_json("metrics.json", {"accuracy": 0.5})
    before = sorted(os.listdir(run_dir))
    monkeypatch.setattr(lw_registry, "start_run", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, FULL)))

    def main():
        with open_run(run_dir, _Config(), name="t"):
            pass

    _one_line_exit(capsys, main)
    assert sorted(os.listdir(run_dir)) == before and read_record(run_dir).status == "completed"


# ---- 2, 16: a file where a folder must be ----------------------------------------------------------
def test_a_runs_root_that_is_a_file_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    root = tmp_path / "runs-file"
    root.write_text("not a folder")
    monkeypatch.setenv("LW_RUNS", str(root))

    def main():
        with open_run(root / "task" / "method" / "seed0-abc", _Config(), name="t"):
            pass

    assert _one_line_exit(capsys, main) == (f"error: cannot use run directory {root}/task/method/seed0-abc: "
                                            f"{root} is a file, not a folder ($LW_RUNS)")
    assert root.read_text() == "not a folder"


def test_an_output_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    target = tmp_path / "out"
    target.write_text("mine")

    def main():
        with open_run(target, _Config(output_dir=str(target)), name="t"):
            pass

    assert _one_line_exit(capsys, main) == f"error: cannot use run directory {target}: {target} is a file, not a folder"
    assert target.read_text() == "mine"


def test_a_cache_that_is_a_file_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "cache").write_text("")
    monkeypatch.setenv("LW_CACHE", str(tmp_path / "cache"))
    err = _one_line_exit(capsys, cache_dir)
    assert err == f"error: cannot use the cache folder {tmp_path / 'cache'}: {tmp_path / 'cache'} is a file, " \
                  "not a folder ($LW_CACHE)"


def test_a_folder_made_under_a_file_names_the_file(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    err = _one_line_exit(capsys, lambda: (tmp_path / "f" / "sub").mkdir(parents=True))
    assert err == f"error: cannot write {tmp_path / 'f' / 'sub'}: {tmp_path / 'f'} is a file, not a folder"


# ---- 5: a corrupt checkpoint, printed once ------------------------------------------------------------
def test_random_bytes_in_a_checkpoint_are_one_line_printed_once(tmp_path, capsys):
    _, optimizer, scheduler = _optimizer()
    last = tmp_path / "run" / "checkpoints" / "last"
    save_training_state(last, optimizer, scheduler, {"step": 1})
    (last / "optimizer.pt").write_bytes(os.urandom(3000))

    @cli_errors
    def main():
        with open_run(tmp_path / "run", _Config(), name="t"):
            load_training_state(last, optimizer, scheduler)

    console = logging.StreamHandler()  # a console on stderr, as the CLIs have one
    logging.getLogger().addHandler(console)
    try:
        with pytest.raises(SystemExit):
            main()
    finally:
        logging.getLogger().removeHandler(console)
    err = capsys.readouterr().err
    assert err.count("corrupt training checkpoint") == 1, err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"error: corrupt training checkpoint {last}: cannot read optimizer.pt (")
    assert line.endswith("; delete it to start over") and "weights_only" not in err
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "run failed: corrupt training checkpoint" in log  # the run's log keeps it, the console says it once
    assert read_record(tmp_path / "run").status == "failed"


# ---- 14, 19: a run dir refuses another config --------------------------------------------------------
def test_a_run_dir_refuses_a_command_of_another_config_and_keeps_its_run(tmp_path):
    run_dir = tmp_path / "run"
    with open_run(run_dir, _Config(output_dir=str(run_dir)), name="t") as run:
        run.metrics["accuracy"] = 0.9
    config_before, record_before = (run_dir / "config.json").read_text(), (run_dir / "run.json").read_text()
    with pytest.raises(LwError) as refused, open_run(run_dir, _Config(steps=300, output_dir=str(run_dir)), name="t"):
        raise AssertionError("must not run")
    message = str(refused.value)
    assert "\n" not in message and str(run_dir) in message and "steps: 3 there, 300 here" in message
    with pytest.raises(LwError, match="steps: 3 there, 300 here"):
        completed_metrics(run_dir, _Config(steps=300))  # what lw-baseline asks before "already done"
    assert (run_dir / "config.json").read_text() == config_before
    assert (run_dir / "run.json").read_text() == record_before

    # not a difference: where it is written, and a field the stored config predates, at its default
    stored = json.loads(config_before)
    del stored["added_later"]
    (run_dir / "config.json").write_text(json.dumps(stored))
    assert completed_metrics(run_dir, _Config(output_dir="elsewhere")) == {"accuracy": 0.9}
    with pytest.raises(LwError, match=r"added_later: \[\] there, \[1\] here"):
        completed_metrics(run_dir, _Config(added_later=[1]))


# ---- 3: a value below a field's minimum -----------------------------------------------------------------
@dataclass
class _Threads:
    threads: int | None = field(default=None, metadata={"help": "threads", "min": 1})


def test_a_value_below_a_fields_minimum_is_one_line():
    with pytest.raises(LwError, match="^threads: must be at least 1, got -3$"):
        build_config(_Threads, {"threads": "-3"})
    assert build_config(_Threads, {"threads": 2}).threads == 2 and build_config(_Threads, {}).threads is None


# ---- 11: a missing relative model folder is a folder, not a hub id ----------------------------------------
def test_a_missing_relative_model_folder_is_no_such_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    with pytest.raises(LwError, match=f"^no such model folder {tmp_path / 'models' / 'sendr'}; known presets"):
        resolve_model_source("models/sendr")
    with pytest.raises(LwError, match=f"^no such model folder {tmp_path / 'x' / 'y' / 'z'};"):
        resolve_model_source("x/y/z")
    assert resolve_model_source("org/name") == "org/name"  # no local `org/`: a hub id
