import csv
import json
import random

import pytest
import torch
from lw_bench.cli import main
from lw_bench.latency import module_share, ratios, time_path, time_paths
from lw_bench.measure import PeakMemory, StageClock, percentiles
from lw_bench.paths import BridgeFloor, BridgePath, ReadsText
from lw_bench.scaling import crossover, cut_to_tokens, fit_line
from lw_bridge import Bridge, BridgeScorer
from lw_bridge.build import bridge_config
from lw_bridge.config import TrainConfig
from lw_bridge.inputs import EncoderInputs
from lw_core.testing import save_tiny_pair, tiny_gemma3, tiny_llama
from lw_tasks import Example, Task, ZeroShotScorer

torch.set_num_threads(1)


def _task(n: int = 8) -> Task:
    examples = [Example(id=str(i), text=f"film {i} was {'fine' if i % 2 else 'bad'} indeed", label=i % 2)
                for i in range(n)]
    return Task(name="toy", description="toy", kind="classification", answers=["negative", "positive"],
                verbalizers=[" negative", " positive"], template="Review: {text}\nSentiment:",
                splits={"train": examples, "validation": examples, "test": examples}, max_input_words=16)


@pytest.fixture(scope="module")
def pair():
    task, sender, receiver = _task(), tiny_llama(), tiny_gemma3()
    config = TrainConfig(task="toy", layer=2, num_soft_tokens=4)
    bridge = Bridge(bridge_config(config, task, sender, [receiver])).eval()
    return task, sender, receiver, bridge


def test_percentiles_and_stage_clock():
    out = percentiles([1.0, 2.0, 3.0, 4.0, 100.0])
    assert out["p50"] == 3.0 and out["p50"] <= out["p90"] <= out["p99"] <= 100.0
    clock = StageClock("cpu")
    with clock.stage("a"):
        sum(range(1000))
    with clock.stage("a"):
        pass
    stages = clock.finish()
    assert set(stages) == {"a"} and stages["a"] > 0 and clock.finish() == {}


def test_peak_memory_sees_an_allocation():
    with PeakMemory("cpu") as before:
        pass
    with PeakMemory("cpu", interval=0.001) as during:
        block = torch.ones(64 * 2**20 // 4)  # 64 MiB
        block.add_(1)
        del block
    assert during.kind == "rss" and during.peak >= before.peak


def test_bridge_path_answers_like_the_bridge_scorer(pair):
    """The timed path is the same work as the scorer the evaluator uses: same predictions."""
    task, sender, receiver, bridge = pair
    test = task.split("test")
    inputs = EncoderInputs(sender, bridge.config.layer, bridge.config.sender_template)
    expected = BridgeScorer(bridge, inputs, receiver).score(task, test).argmax(-1).tolist()
    path = BridgePath(task, sender, receiver, bridge)
    assert path(test, StageClock()) == expected
    prefilled = path.scorer.prefilled_start  # the receiver's constant start, prefilled on the first call
    assert prefilled is not None and path(test[:1], StageClock()) == expected[:1] and path.scorer.prefilled_start is prefilled


def test_direct_path_answers_like_zero_shot(pair):
    task, _, receiver, _ = pair
    test = task.split("test")
    expected = ZeroShotScorer(receiver, memo=False).score(task, test).argmax(-1).tolist()
    assert ReadsText("direct", task, receiver)(test, StageClock()) == expected


def test_time_paths_reports_percentiles_stages_throughput_and_ratios(pair):
    task, sender, receiver, bridge = pair
    bridge_path = BridgePath(task, sender, receiver, bridge)
    paths = [bridge_path, BridgeFloor(bridge_path), ReadsText("direct", task, receiver)]
    times = time_paths(paths, task.split("test"), warmup=1, repeats=3, batch_sizes=[1, 4],
                       throughput_examples=4, progress=False)
    assert [t.name for t in times] == ["bridge", "bridge floor", "direct"]
    for t in times:
        assert 0 < t.latency_ms["p50"] <= t.latency_ms["p99"] and set(t.throughput) == {1, 4}
        assert t.peak_memory_mib > 0
    stages = set(times[0].stages_ms)
    assert {"sender: tokenise + prefill to layer L", "encoder", "adapter"} <= stages
    assert 0 < module_share(times[0]) < 1
    r = ratios(times, [("bridge", "direct"), ("bridge", "bridge floor"), ("missing", "direct")])
    assert set(r) == {"bridge / direct", "bridge / bridge floor"} and all(v > 0 for v in r.values())


def test_time_path_rejects_no_examples(pair):
    task, _, receiver, _ = pair
    with pytest.raises(ValueError, match="no examples"):
        time_path(ReadsText("direct", task, receiver), [])


def test_scaling_helpers(pair):
    _, _, receiver, _ = pair
    cut = cut_to_tokens(receiver, _task().split("test"), 40, 3)
    assert len(cut) == 3 and all(len(receiver.token_ids(e.text)) == 40 for e in cut)
    a, b = fit_line([1, 2, 3], [2, 4, 6]), fit_line([1, 2, 3], [5, 6, 7])
    assert a["ms_per_token"] == pytest.approx(2) and crossover(a, b) == pytest.approx(4)
    assert crossover(a, a) is None


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    return save_tiny_pair(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def user_csv(tmp_path_factory):
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["review", "stars"])
        for i in range(60):
            label = "good" if i % 2 else "bad"
            writer.writerow([f"review {i}: it was {rng.choice(['great', 'fine'] if i % 2 else ['dull', 'poor'])}", label])
    return str(path)


def test_cli_latency_and_scaling_write_runs(model_dirs, user_csv, tmp_path, monkeypatch):
    monkeypatch.setenv("LW_RUNS", str(tmp_path / "runs"))
    common = ["--task", user_csv, "--text-column", "review", "--label-column", "stars", "--sender", model_dirs["sender"], "--receivers", model_dirs["receiver"],
              "--layer", "2", "--num-soft-tokens", "4", "--examples", "4", "--repeats", "2", "--warmup", "1",
              "--device", "cpu", "--no-progress"]
    main(["latency", *common, "--batch-sizes", "1", "2", "--throughput-examples", "2", "--relay-tokens", "3",
          "--output-dir", str(tmp_path / "lat")])
    results = json.loads((tmp_path / "lat" / "results.json").read_text())
    names = [p["name"] for p in results["paths"]]
    assert names[:3] == ["bridge", "bridge floor", "direct"] and "text relay (3 tokens)" in names
    assert {"lora (merged)", "prompt tuning", "few-shot", "probe", "sender's answer relayed"} <= set(names)
    assert "bridge / direct" in results["ratios_p50"] and (tmp_path / "lat" / "latency.png").stat().st_size > 0
    record = json.loads((tmp_path / "lat" / "run.json").read_text())
    assert record["status"] == "completed" and record["metrics"]["ratio bridge / direct"] > 0
    main(["scaling", *common, "--scaling-task", user_csv, "--lengths", "8", "16", "--scaling-relay-tokens", "2",
          "--output-dir", str(tmp_path / "scale")])
    scaling = json.loads((tmp_path / "scale" / "results.json").read_text())
    assert scaling["lengths"] == [8, 16] and set(scaling["fits"]) >= {"bridge", "direct"}
    assert (tmp_path / "scale" / "scaling.png").is_file()


def test_cli_wire_needs_a_run(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LW_RUNS", str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        main(["wire"])
    assert exit_info.value.code == 2 and "needs --run" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused before loading anything or opening a run


def test_train_throughput_covers_every_method(pair):
    from lw_bench.train_bench import bench_train

    task, sender, receiver, bridge = pair
    rows = bench_train(task, sender, receiver, bridge, batch_size=2, steps=2)
    assert [r["method"] for r in rows] == ["bridge (cached states)", "bridge (no cache)", "lora", "prompt tuning"]
    assert all(r["train examples/s"] > 0 for r in rows) and rows[0]["relative to first"] == 1.0
    assert not bridge.training


def test_step_against_answer_set_size(pair):
    from lw_bench.train_bench import answer_pool, bench_answers

    _, sender, receiver, bridge = pair
    names = [" alice smith", " alice jones", " bob", " bob stone", " carol", " dave"]
    examples = [Example(id=str(i), text=f"film {i} indeed", label=i % len(names)) for i in range(4)]
    task = Task(name="names", description="names", kind="classification", answers=[n.strip() for n in names],
                verbalizers=names, template="Text: {text}\nName:",
                splits={"train": examples, "validation": examples, "test": examples}, max_input_words=16)
    assert answer_pool(task, 3) == names[:3]
    rows = bench_answers(task, sender, receiver, bridge, [2, 6], batch_size=2, steps=2)
    rules = ["first-token", "distinct-prefix", "full", "full, answers-normalised"]
    assert [(r["answers"], r["rule"]) for r in rows] == [(n, rule) for n in (2, 6) for rule in rules]
    # byte-level tiny tokenizer: every name starts with the space token, so first-token falls back to full
    assert [r["scored as"] for r in rows[:4]] == ["full", "distinct-prefix", "full", "full"]
    assert all(r["s/step"] > 0 and r["peak MiB"] > 0 for r in rows) and rows[0]["relative to first"] == 1.0
    assert rows[6]["trie nodes"] > rows[2]["trie nodes"] > rows[1]["trie nodes"] > 0
