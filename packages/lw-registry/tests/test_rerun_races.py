"""Many processes asking to run one failed run again at the same moment (`--rerun ID`, `--rerun-failed`,
`submit` of its plan, as two `watch.sh --rerun-failed` loops would): it runs once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from lw_registry import read_record

PLAN = ("name: race\ncommand: '{python} -m lw_registry.demo --seed {seed} --run-dir {run_dir} "
        "--fail-until-attempt 2 --steps 3 --step-seconds 0.2'\nseeds: [0]\n")
# Each process waits for the go file, then runs the CLI: they all decide at the same moment.
AT_ONCE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    go = Path(sys.argv[1])
    while not go.exists():
        time.sleep(0.005)
    from lw_registry import cli
    sys.exit(cli.main(sys.argv[2:]))
""")
PROCESSES = 8


def _failed_run(tmp_path: Path) -> tuple[Path, Path]:
    root, plan = tmp_path / "runs", tmp_path / "race.yaml"
    plan.write_text(PLAN)
    out = subprocess.run([sys.executable, "-m", "lw_registry.cli", "--root", str(root), "submit", str(plan)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "failed" in out.stdout, out.stdout + out.stderr
    (run_dir,) = [p.parent for p in root.rglob("run.json")]
    assert (read_record(run_dir).status, read_record(run_dir).attempt) == ("failed", 1)
    return root, run_dir


def _at_once(tmp_path: Path, commands: list[list[str]]) -> list[subprocess.CompletedProcess[str]]:
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", AT_ONCE, str(go), *cmd], cwd=tmp_path, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for cmd in commands]
    go.touch()
    results = []
    for proc, cmd in zip(procs, commands, strict=True):
        out, err = proc.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(cmd, proc.returncode, out, err))
    return results


def _ran_once(run_dir: Path) -> None:
    record = read_record(run_dir)
    assert (record.status, record.attempt) == ("completed", 2), record
    log = (run_dir / "job.log").read_text()
    assert log.count("=== attempt 2 ") == 1 and "=== attempt 3 " not in log, log


def test_concurrent_rerun_of_one_run_runs_it_once(tmp_path):
    root, run_dir = _failed_run(tmp_path)
    run_id = read_record(run_dir).id
    results = _at_once(tmp_path, [["--root", str(root), "--rerun", run_id]] * PROCESSES)
    winners = [r for r in results if r.returncode == 0]
    assert len(winners) == 1, [(r.returncode, r.stdout, r.stderr) for r in results]
    assert f"rerunning {run_id}" in winners[0].stdout and "1 completed" in winners[0].stdout
    for loser in results:
        if loser is winners[0]:
            continue
        lines = loser.stderr.strip().splitlines()
        # a loser that starts after the winner finished finds the run completed rather than running
        assert loser.returncode == 2 and len(lines) == 1, lines
        assert lines[0].startswith((f"error: run {run_id} is ", f"error: run {run_id} already completed")), lines
        assert "rerunning" not in loser.stdout
    _ran_once(run_dir)


def test_concurrent_rerun_failed_and_submit_run_it_once(tmp_path):
    root, run_dir = _failed_run(tmp_path)
    commands = [["--root", str(root), "--rerun-failed"]] * PROCESSES
    commands[::4] = [["--root", str(root), "submit", str(tmp_path / "race.yaml")]] * len(commands[::4])
    results = _at_once(tmp_path, commands)
    assert all(r.returncode == 0 for r in results), [(r.returncode, r.stdout, r.stderr) for r in results]
    started = sum(r.stdout.count("rerunning ") + r.stdout.count("] completed") * (r.args[-2] == "submit")
                  for r in results)
    assert started == 1, [r.stdout for r in results]
    assert all(r.stderr.strip() == "" or r.stderr.startswith("skipped: run ") for r in results)
    _ran_once(run_dir)
