"""A command run by hand whose process died (kill -9, the OOM killer) shows as dead in
`lw-registry --status`, not `running` until someone reruns it."""

import json
import subprocess
import sys

from lw_registry.cli import main


def test_a_hand_run_whose_process_is_gone_is_not_left_running(tmp_path, capsys):
    run_dir = tmp_path / "t" / "m" / "seed0-abc"
    script = ("import sys; from lw_registry.record import start_run; "
              "start_run(sys.argv[1], name='m', argv=['m'], config={}, task='t', method='m', seed=0)")
    subprocess.run([sys.executable, "-c", script, str(run_dir)], check=True)  # exits with the run "running"
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "running" and record["executor"].rpartition(":")[2].isdigit()
    assert main(["--root", str(tmp_path)]) == 0
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "failed" and "process" in record["error"] and "exited" in record["error"]


def test_a_live_hand_run_stays_running(tmp_path):
    from lw_registry.record import start_run

    run_dir = tmp_path / "t" / "m" / "seed0-abc"
    start_run(run_dir, name="m", argv=["m"], config={}, task="t", method="m", seed=0)  # this process: alive
    assert main(["--root", str(tmp_path)]) == 0
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
