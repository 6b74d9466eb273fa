import logging
import os
import signal
from dataclasses import dataclass

import pytest
from lw_core.preemption import PREEMPTED_EXIT_CODE, exit_on_sigterm
from lw_core.runs import open_run
from lw_registry import read_record


@dataclass
class _Config:
    steps: int = 3


def test_a_run_stopped_by_sigterm_is_recorded_preempted_and_keeps_its_files(tmp_path, caplog):
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped, exit_on_sigterm(), open_run(tmp_path / "run", _Config(), name="t") as run:
        run.write_json("partial.json", {"step": 1})
        os.kill(os.getpid(), signal.SIGTERM)
    assert stopped.value.code == PREEMPTED_EXIT_CODE
    record = read_record(tmp_path / "run")
    assert record.status == "preempted" and record.exit_code == PREEMPTED_EXIT_CODE
    assert (tmp_path / "run" / "partial.json").is_file()
    assert signal.getsignal(signal.SIGTERM) is previous
    # A signal is not a fault: one line, no "run failed: 143", no traceback.txt.
    said = [r.getMessage() for r in caplog.records if r.name == "lw" and r.levelno >= logging.WARNING]
    assert len(said) == 1 and said[0].startswith("run preempted (stopped by a signal)"), said
    assert not (tmp_path / "run" / "traceback.txt").exists()


def test_a_completed_run_is_recorded_completed(tmp_path):
    with open_run(tmp_path / "run", _Config(), name="t") as run:
        run.metrics["accuracy"] = 0.5
    record = read_record(tmp_path / "run")
    assert record.status == "completed" and record.metrics == {"accuracy": 0.5}
