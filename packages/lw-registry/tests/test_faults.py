"""A runs root on a full or read-only filesystem (a real small tmpfs; needs root to mount, else skipped):
one clear line from the CLI, and nothing already written is lost."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest
from lw_registry import read_record

PLAN = "name: {name}\ncommand: '{{python}} -m lw_registry.demo --seed {{seed}} --run-dir {{run_dir}}'\nseeds: {seeds}\n"


@contextlib.contextmanager
def small_fs(where: Path, size: str = "1m"):
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(path: Path) -> None:
    """Write until not one more byte fits."""
    for n, chunk in enumerate((65536, 4096, 1)):
        with open(path.with_name(f"{path.name}{n}"), "wb", buffering=0) as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * chunk)


@pytest.mark.parametrize("fault", ["disk-full", "read-only"])
def test_a_runs_root_that_refuses_writes_gives_one_line_and_keeps_what_was_written(tmp_path, run_cli, fault):
    with small_fs(tmp_path / "fs") as root:
        (tmp_path / "first.yaml").write_text(PLAN.format(name="first", seeds=[0, 1]))
        rc, out, err = run_cli("--root", root, "submit", tmp_path / "first.yaml")
        assert rc == 0, err
        before = {p: p.read_text() for p in root.rglob("run.json")}
        assert len(before) == 2

        if fault == "disk-full":
            _fill(root / "filler")
        else:
            subprocess.run(["mount", "-o", "remount,ro", str(root)], check=True)
        (tmp_path / "second.yaml").write_text(PLAN.format(name="second", seeds=[2, 3]))
        rc, out, err = run_cli("--root", root, "submit", tmp_path / "second.yaml")
        lines = err.strip().splitlines()
        assert rc == 1 and len(lines) == 1, (out, err)
        reason = "No space left on device" if fault == "disk-full" else "Read-only file system"
        assert lines[0].startswith("error: cannot write") and reason in lines[0] and str(root) in lines[0]
        if fault == "disk-full":  # it names the file, and leaves no (lock-only) run dir of the new plan behind
            assert lines[0].startswith(f"error: cannot write {root.resolve() / 'second'}/") and "run.json" in lines[0]
            assert not (root / "second").exists()

        # The earlier runs' records are intact and complete; no temp file is left behind.
        assert {p: p.read_text() for p in root.rglob("run.json")} == before
        assert all(read_record(p.parent).status == "completed" for p in before)
        assert list(root.rglob("*.tmp")) == []
        rc, out, err = run_cli("--root", root, "--status")
        assert rc == 0 and "completed  2" in out, (out, err)


@pytest.mark.parametrize("command", [["--status"], ["--list", "all"], ["report"]])
def test_a_runs_root_that_is_a_file_is_one_line_not_an_empty_table(tmp_path, run_cli, monkeypatch, command):
    root = tmp_path / "runs"
    root.write_text("a file")
    monkeypatch.setenv("LW_RUNS", str(root))
    rc, out, err = run_cli(*command)
    assert (rc, out, err) == (2, "", f"error: runs root {root} is a file, not a folder\n")
    assert root.read_text() == "a file"


def test_a_full_disk_names_the_file_it_could_not_write(tmp_path, monkeypatch):
    import errno

    from lw_registry import record

    def full(fd, *args, **kwargs):  # the OS refuses the write itself: its error names no file
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(record.json, "dump", full)
    with pytest.raises(OSError) as refused:
        record.write_json_atomic(tmp_path / "run.json", {"a": 1})
    assert refused.value.errno == errno.ENOSPC and refused.value.filename == str(tmp_path / "run.json")
    assert list(tmp_path.iterdir()) == []  # no temp file left
