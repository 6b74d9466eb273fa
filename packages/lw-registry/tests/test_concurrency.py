"""Many processes writing records at once: no record is ever corrupt, no update is lost."""

import json
import subprocess
import sys
import textwrap

from lw_registry import read_record, start_run
from lw_registry.table import load_table

WRITERS, UPDATES = 8, 25

WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from lw_registry import finish_run, start_run, update_record
    shared, own, me, n = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    start_run(own, name=me, argv=[], config={"writer": me}, task="t", method="m", seed=int(me))
    for i in range(n):
        update_record(shared, metrics={f"w{me}_{i}": i})   # read-modify-write on one shared record
        update_record(own, metrics={"step": i})
    finish_run(own, metrics={"accuracy": 0.5})
""")

READER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    shared, root, stop = Path(sys.argv[1]) / "run.json", Path(sys.argv[2]), Path(sys.argv[3])
    reads = 0
    while not stop.exists() or reads == 0:
        json.loads(shared.read_text())    # never a torn file
        for path in root.rglob("run.json"):
            try:
                json.loads(path.read_text())
            except FileNotFoundError:
                pass
        reads += 1
    print(reads)
""")


def test_many_writers_never_corrupt_or_lose_a_record(tmp_path):
    root = tmp_path / "runs"
    shared = root / "shared"
    start_run(shared, name="shared", argv=[], config={})
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(shared), str(root), str(stop)],
                              stdout=subprocess.PIPE, text=True)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(shared), str(root / f"w{i}"), str(i),
                                 str(UPDATES)]) for i in range(WRITERS)]
    assert [w.wait(timeout=120) for w in writers] == [0] * WRITERS
    stop.touch()
    out, _ = reader.communicate(timeout=60)
    assert reader.returncode == 0 and int(out) > 0

    metrics = read_record(shared).metrics
    assert len(metrics) == WRITERS * UPDATES  # no lost update
    table = load_table(root)
    assert table.problems == [] and table.frame.height == WRITERS + 1
    assert sorted(table.frame.filter(table.frame["status"] == "completed")["seed"].to_list()) == list(range(WRITERS))
    for i in range(WRITERS):
        assert read_record(root / f"w{i}").metrics == {"step": UPDATES - 1, "accuracy": 0.5}
    assert list(root.rglob("*.tmp")) == []
    json.loads((shared / "run.json").read_text())


def test_two_submits_of_one_plan_run_each_run_once(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text("name: twice\ncommand: '{python} -m lw_registry.demo --seed {seed} --run-dir {run_dir}'\n"
                    "seeds: [0, 1, 2, 3]\nconcurrency: 2\n")
    env_root = str(tmp_path / "runs")
    cmd = [sys.executable, "-m", "lw_registry.cli", "--root", env_root, "submit", str(plan)]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    records = [read_record(p.parent) for p in (tmp_path / "runs").rglob("run.json")]
    assert len(records) == 4 and all(r.status == "completed" and r.attempt == 1 for r in records)
    assert sum(out.count("] completed") for out in outs) == 4


def test_64_writers_at_once_lose_and_corrupt_nothing(tmp_path):
    """64 processes each create, update and finish their own run and bump one shared record."""
    writers, updates = 64, 3
    root = tmp_path / "runs"
    shared = root / "shared"
    start_run(shared, name="shared", argv=[], config={})
    go = tmp_path / "go"
    script = "import sys, time\nfrom pathlib import Path\nwhile not Path(sys.argv[5]).exists():\n    time.sleep(0.01)\n" \
             + WRITER.replace("import sys\n", "")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(shared), str(root / f"w{i:02d}"), str(i),
                               str(updates), str(go)]) for i in range(writers)]
    go.touch()  # all start writing at the same moment
    assert [p.wait(timeout=600) for p in procs] == [0] * writers

    table = load_table(root)
    assert table.problems == [] and table.frame.height == writers + 1
    assert len(read_record(shared).metrics) == writers * updates  # no lost update on the shared record
    for i in range(writers):
        record = read_record(root / f"w{i:02d}")
        assert record.status == "completed" and record.metrics == {"step": updates - 1, "accuracy": 0.5}
    for path in root.rglob("run.json"):
        json.loads(path.read_text())
    assert list(root.rglob("*.tmp")) == []
