"""`lw-registry report --suite SUITE --update README.md`: the results section (findings, tables, figures,
ablations, what is missing) from tiny fake records, the archive it leaves, and regenerating from it."""

import json

import pytest
from lw_registry.cli import main
from lw_registry.plan import load_plan
from lw_registry.report.publish import END, START, current_section, section_from

SUITE = """
plans = ["plans/main.toml", "plans/abl.toml"]
tasks = ["rt-sentiment", "r8"]
[metrics]
r8 = "macro_f1"
[ablations]
abl = "ablation"
"""
MAIN = """name = "main"
command = "{python} -c pass {task} {method} {seed}"
tasks = ["rt-sentiment", "r8"]
methods = ["bridge", "lora"]
seeds = [0, 1]
"""
ABL = """name = "abl"
command = "{python} -c pass {task} {seed} {ablation}"
tasks = ["rt-sentiment"]
seeds = [0, 1]
params = {ablation = ["default", "k-16", "no-anti-collapse"]}
"""
SCALING = {"lengths": [64, 128], "p50_ms": {"bridge": [30.0, 31.0], "direct": [20.0, 40.0]},
           "bridge_equals_direct_at_tokens": 96.0, "bridge_cheaper_at_measured_lengths": [128],
           "environment": {"task": "20ng", "device": "cpu"}}

ANSWERS = {"batch": 32, "environment": {"task": "r52", "device": "cpu"}, "answer_sizes": [
    {"answers": 2, "rule": "first-token", "s/step": 0.5, "relative to first": 1.0},
    {"answers": 52, "rule": "first-token", "s/step": 1.2, "relative to first": 2.4},
    {"answers": 2, "rule": "full", "s/step": 0.8, "relative to first": 1.0},
    {"answers": 52, "rule": "full", "s/step": 2.0, "relative to first": 2.5}]}

SERVE = {"environment": {"task": "rt-sentiment", "device": "cpu", "bridge": "fresh"}, "rows": [
    {"target": "predict", "concurrency": 1, "sent": 8, "ok": 8, "503": 0, "failed": 0, "req/s": 10.0, "p50 ms": 95.0,
     "p90 ms": 99.0, "p99 ms": 101.0, "peak MiB": "900.0", "served / in process": 0.5},
    {"target": "predict", "concurrency": 8, "sent": 8, "ok": 8, "503": 0, "failed": 0, "req/s": 18.0, "p50 ms": 400.0,
     "p90 ms": 420.0, "p99 ms": 430.0, "peak MiB": "950.0", "served / in process": 0.9},
    {"target": "receiver reads the text", "concurrency": 8, "sent": 8, "ok": 8, "503": 0, "failed": 0, "req/s": 30.0,
     "p50 ms": 200.0, "p90 ms": 220.0, "p99 ms": 230.0, "peak MiB": "600.0"},
    {"target": "in process (batch 32)", "req/s": 20.0}]}


@pytest.fixture
def repo(tmp_path, fake_run):
    """A suite with two plans, a README with markers, and a runs root holding some of the suite's runs."""
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "main.toml").write_text(MAIN)
    (tmp_path / "plans" / "abl.toml").write_text(ABL)
    (tmp_path / "suite.toml").write_text(SUITE)
    (tmp_path / "README.md").write_text(f"# demo\n\n{START}\nold\n{END}\n\nafter\n")
    runs = tmp_path / "runs"
    hashes = {(r.plan, r.task, r.method, r.seed, r.params.get("ablation")): r.plan_hash
              for name in ("main", "abl") for r in load_plan(tmp_path / "plans" / f"{name}.toml").runs}

    def planned(plan, task, method, seed, ablation=None, **extra):
        key = (plan, task, None if ablation else method, seed, ablation)
        return fake_run(runs, method, seed, name=f"{plan}-{task}-{method}-{ablation}", task=task, plan=plan,
                        plan_hash=hashes[key], params={"ablation": ablation} if ablation else {}, **extra)

    wire = {"wire_bytes_fp16": 256, "wire_bytes_int4": 72, "text_bytes_mean": 113.0}
    planned("main", "rt-sentiment", "bridge", 0, accuracy=0.80, accuracy_wire_fp16=0.80, accuracy_wire_int4=0.77, **wire)
    planned("main", "rt-sentiment", "bridge", 1, accuracy=0.82, accuracy_wire_fp16=0.82, accuracy_wire_int4=0.79, **wire)
    planned("main", "rt-sentiment", "lora", 0, accuracy=0.86)
    planned("main", "rt-sentiment", "lora", 1, accuracy=0.87)
    planned("main", "r8", "bridge", 0, accuracy=0.90, macro_f1=0.50)
    for ablation, scores in (("default", (0.80, 0.82)), ("k-16", (0.84, 0.84)), ("no-anti-collapse", (0.70, 0.72))):
        for seed, score in enumerate(scores):
            planned("abl", "rt-sentiment", "bridge", seed, ablation, accuracy=score)
    fake_run(runs, "text-relay", 0, 0.70, message_bytes=41.6)
    fake_run(runs, "zero-shot", 0, 0.60)
    bench = fake_run(runs, "bench-scaling", 0, None, task="20ng")
    (bench / "results.json").write_text(json.dumps(SCALING))
    bench = fake_run(runs, "bench-train", 1, None, task="r52", name="answers")
    (bench / "results.json").write_text(json.dumps(ANSWERS))
    later = fake_run(runs, "bench-train", 2, None, task="r52", name="methods")  # the methods comparison: no sizes
    (later / "results.json").write_text(json.dumps({"rows": [{"method": "lora"}]}))
    serve = fake_run(runs, "bench-serve", 0, None, task="rt-sentiment")
    (serve / "results.json").write_text(json.dumps(SERVE))
    limit = fake_run(runs, "bench-limit", 0, None, task="rt-sentiment")
    (limit / "results.json").write_text(json.dumps(LIMIT))
    return tmp_path


LIMIT = {"environment": {"task": "rt-sentiment"}, "ratios_p50": {"bridge / bridge floor": 1.05, "text relay (32 tokens) / bridge": 12.0},
         "paths": [{"name": n, "latency_ms": {"p50": v, "p90": v + 1, "p99": v + 2}}
                   for n, v in (("bridge", 210.0), ("bridge floor", 200.0), ("text relay (32 tokens)", 2520.0))]}


def _report(repo, *extra):
    return main(["report", "--root", str(repo / "runs"), "--suite", str(repo / "suite.toml"),
                 "--update", str(repo / "README.md"), *extra])


def test_section_tables_findings_figures_and_missing(repo):
    assert _report(repo) == 0
    text = current_section(repo / "README.md")
    assert "Generated by `uv run lw-registry report --suite suite.toml --update README.md` from 17 run records" in text
    assert ("- **rt-sentiment** (accuracy): best is lora (3,000, CPU) at 0.865 ± 0.007 (2 seeds), 0.055 above "
            "bridge (3,000, CPU) at 0.810 ± 0.014 (2 seeds); more than the larger std (0.014).") in text
    assert "- **r8** (macro-F1): best is bridge (3,000, CPU) at 0.500 (1 seed), the only row." in text
    assert "accuracy 0.780 with the message at int4 (72 bytes) against 0.810 unquantised." in text
    assert "k-16 scores +0.030 at 0.840 ± 0.000 (2 seeds), no-anti-collapse -0.100 at" in text
    assert "bridge and direct meet at 96 input tokens; the bridge was cheaper than the receiver reading the text at 128 tokens." in text
    r8 = text[text.index("### r8"):]
    assert "| method | train budget | hardware | macro-F1 (mean ± std) |" in r8 and "| bridge | 3,000 | CPU | 0.500 |" in r8
    ablations = text[text.index("### Ablations: abl, by ablation"):]
    assert [line.split(" | ")[0] for line in ablations.splitlines() if line.startswith("| ") and "---" not in line] == [
        "| ablation", "| default", "| k-16", "| no-anti-collapse", "| majority class (test split)"]  # the plan's order
    assert "#### r8" not in ablations  # the ablation plan has no r8 runs
    rt = text[text.index("### rt-sentiment"):text.index("### r8")]
    assert "| text-relay | 3,000 | CPU | 0.700 |  |" in rt and "| bridge | 3,000 | CPU | 0.810 ± 0.014 |  | 2 |" in rt  # no ablation run
    assert ("- `main` (plans/main.toml): 3 of 8 runs not completed: r8/bridge/seed1, r8/lora/seed0, r8/lora/seed1"
            in text) and "`abl`" not in text.split("### Not run yet")[1]
    assert ("- **answer-set size** (lw-bench train --answers, r52, cpu, batch 32): a bridge step with 52 answers "
            "against one with 2, by answer rule: first-token 2.40x (1.20 s); full 2.50x (2.00 s).") in text
    assert "| 52 | full | 2.0 | 2.5 |" in text
    limit = text[text.index("### The bridge path against its floor (batch 1)"):]
    assert "| bridge floor | 200.0 | 201.0 | 202.0 |" in limit and "| bridge / bridge floor | 1.05 |" in limit
    assert ("- **bridge at its floor** (lw-bench limit, rt-sentiment, batch 1): bridge / bridge floor 1.05; "
            "text relay (32 tokens) / bridge 12.00.") in text
    serving = text[text.index("### Serving under load"):]
    assert serving.splitlines()[2] == ("| target | concurrency | req/s | p50 ms | p90 ms | p99 ms | served / in process "
                                       "| peak MiB | sent | ok | 503 | failed |")
    assert "| predict | 8 | 18.0 | 400.0 | 420.0 | 430.0 | 0.9 | 950.0 | 8 | 8 | 0 | 0 |" in serving
    assert "| in process (batch 32) |  | 20.0 |" in serving
    assert ("- **serving** (lw-bench serve, rt-sentiment, cpu, fresh bridge): at concurrency 8, predict 18.0 req/s "
            "(p99 430.0 ms, 0.9x in process); receiver reads the text 30.0 req/s (p99 230.0 ms); in process 20.0 "
            "examples/s.") in text
    for name in ("accuracy-rt-sentiment", "accuracy-r8", "bytes-rt-sentiment", "latency-scaling", "answers-scaling"):
        assert f"](docs/results/{name}.png)" in text
        assert (repo / "docs" / "results" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert "- r8: missing (no completed bridge run scored at wire precisions" in text
    assert (repo / "README.md").read_text().endswith(f"{END}\n\nafter\n")


def test_archive_regenerates_the_same_section(repo):
    assert _report(repo) == 0
    archive = repo / "results" / "records"
    copied = sorted(p.relative_to(archive).as_posix() for p in archive.rglob("*.json"))
    assert "rt-sentiment/lora/main-rt-sentiment-lora-None-rt-sentiment-0/run.json" in copied
    assert "20ng/bench-scaling/bench-scaling-20ng-0/results.json" in copied
    assert all(p.endswith(("run.json", "env.json", "results.json")) for p in copied)
    before = (repo / "README.md").read_text()
    rebuilt = section_from([archive], suite=repo / "suite.toml", base=repo, update=repo / "README.md", archive=archive)
    assert rebuilt.text.strip("\n") == current_section(repo / "README.md")
    # the runs root gone, the committed records alone give the same README
    assert main(["report", "--root", str(archive), "--suite", str(repo / "suite.toml"),
                 "--update", str(repo / "README.md"), "--no-figures"]) == 0
    assert (repo / "README.md").read_text() == before


@pytest.mark.parametrize(("args", "setup", "message"), [
    (["--task", "nope"], None, "unknown task 'nope'; known: 20ng, r52, r8, rt-sentiment"),
    (["--root", "missing"], None, "/missing does not exist"),
    ([], lambda repo: (repo / "runs" / "broken").mkdir() or (repo / "runs" / "broken" / "run.json").write_text("{"),
     "unreadable record"),
    ([], lambda repo: (repo / "suite.toml").write_text("bogus = 1\n" + SUITE), "unknown suite key(s) bogus"),
    ([], lambda repo: (repo / "runs" / "bench-scaling" / "seed0" / "results.json").write_text("[]"),
     "unreadable lw-bench scaling results"),
    ([], lambda repo: (repo / "suite.toml").write_text(SUITE.replace("main.toml", "gone.toml")), "gone.toml"),
])
def test_bad_input_is_one_line(repo, capsys, args, setup, message):
    if setup:
        setup(repo)
    capsys.readouterr()
    argv = ["report", "--root", str(repo / "runs"), "--suite", str(repo / "suite.toml"),
            "--update", str(repo / "README.md"), *args]
    assert main([a if a != "missing" else str(repo / "missing") for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert "old" in (repo / "README.md").read_text()  # nothing written


def test_scaling_lines_meeting_below_zero_do_not_meet(repo):
    (repo / "runs" / "bench-scaling" / "seed0" / "results.json").write_text(json.dumps(
        {**SCALING, "bridge_equals_direct_at_tokens": -758.3, "bridge_cheaper_at_measured_lengths": []}))
    assert _report(repo, "--no-figures") == 0
    assert ("bridge and direct do not meet at a positive length; the bridge was cheaper than the receiver reading "
            "the text at none of the measured lengths (64, 128 tokens).") in current_section(repo / "README.md")


def test_a_metric_that_is_not_a_number_names_the_record(repo, capsys, fake_run):
    fake_run(repo / "runs", "lora", 5, "high")
    assert _report(repo) == 2
    err = capsys.readouterr().err
    assert "metric accuracy is 'high', not a number" in err and "lora/seed5" in err


def test_ablation_findings_compare_within_one_hardware():
    from types import SimpleNamespace

    from lw_registry.report.findings import ablation_findings
    from lw_registry.report.groups import Group

    def group(ablation, hardware, *scores):
        return Group((ablation, "3,000 × 120 steps", hardware),
                     [SimpleNamespace(metrics={"accuracy": s}) for s in scores], "accuracy")

    lines = ablation_findings("rt-sentiment", [
        group("default", "CPU", 0.80, 0.82), group("k-16", "CPU", 0.84, 0.84),
        group("fusion", "CPU bf16", 0.90, 0.90), group("k-4", "CPU bf16", 0.70, 0.70)])
    assert len(lines) == 1  # no bf16 default: the bf16 rows are compared with nothing
    assert lines[0].startswith("- **rt-sentiment** ablations (CPU), against default at 0.810 ± 0.014 (2 seeds): "
                               "k-16 scores +0.030")
