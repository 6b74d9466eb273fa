"""lw-train on the embedded pair (smollm2-135m → gemma3-270m) on a small slice of rt-sentiment, then the
saved bridge in a fresh process: `-m slow` (a few minutes on a CPU)."""

import csv
import json

import pytest
from lw_bridge import trainer
from lw_bridge.config import TrainConfig
from lw_tasks import load_task

pytestmark = pytest.mark.slow

SIZES = {"train": 256, "validation": 64, "test": 128}


@pytest.fixture()
def rt_slice(tmp_path):
    """A task file over the first examples of each rt-sentiment split, with the task's own prompt."""
    rt = load_task("rt-sentiment")
    with open(tmp_path / "rt.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "split"])
        for split, n in SIZES.items():
            writer.writerows([e.text, rt.answers[e.label], split] for e in rt.split(split)[:n])
    task_file = tmp_path / "rt.toml"
    task_file.write_text(
        f'name = "rt-slice"\ndata = "rt.csv"\ntext_column = "text"\nlabel_column = "label"\nsplit_column = "split"\n'
        f"template = {json.dumps(rt.template)}\n"
        f'answers = {{ {", ".join(f"{a} = {json.dumps(v)}" for a, v in zip(rt.answers, rt.verbalizers, strict=True))} }}\n'
    )
    return str(task_file)


def test_bridge_trains_on_the_real_pair_and_reloads_in_a_fresh_process(tmp_path, monkeypatch, rt_slice,
                                                                       fresh_process_accuracy):
    monkeypatch.setenv("LW_RUNS", str(tmp_path / "runs"))
    run_dir = tmp_path / "run"
    # fp32: the fresh process must reproduce the run's test accuracy exactly. In bf16 ("auto" on a CPU with AMX)
    # a reloaded 24-step bridge, whose scores sit near ties, was seen scoring 0.625 against the run's 0.641 on
    # this slice; in fp32 the two agree. The fusion test below keeps "auto" (bf16 there).
    config = TrainConfig(task=rt_slice, steps=24, batch_size=16, eval_every=12, max_train_examples=SIZES["train"],
                         max_validation_examples=SIZES["validation"], compare_zero_shot=False, output_dir=str(run_dir),
                         dtype="fp32")
    metrics = trainer.train(config)
    assert metrics["trainable_params"] > 0 and 0 <= metrics["soft_token_diversity"] <= 2
    assert metrics["wire_bytes_int4"] < metrics["text_bytes_mean"]  # the message is smaller than the text
    history = json.loads((run_dir / "history.json").read_text())
    assert len(history) == 24 and all(r["loss"] == r["loss"] for r in history)  # finite every step
    assert fresh_process_accuracy(run_dir, rt_slice) == metrics["accuracy"]


def test_fusion_with_a_sender_layer_mixture_on_the_real_pair(tmp_path, monkeypatch, rt_slice, fresh_process_accuracy):
    monkeypatch.setenv("LW_RUNS", str(tmp_path / "runs"))
    run_dir = tmp_path / "fusion"
    config = TrainConfig(task=rt_slice, steps=24, batch_size=16, eval_every=12, max_train_examples=SIZES["train"],
                         max_validation_examples=SIZES["validation"], compare_zero_shot=False, output_dir=str(run_dir),
                         layers=[8, 15, 22], receiver_reads_text=True)
    metrics = trainer.train(config)
    assert set(metrics["layer_weights"]) == {"8", "15", "22"}
    assert abs(sum(metrics["layer_weights"].values()) - 1) < 1e-3
    assert metrics["answer_rule"] in ("first-token", "full") and isinstance(metrics["beats_majority"], bool)
    assert json.loads((run_dir / "run.json").read_text())["method"] == "bridge-fusion"
    assert fresh_process_accuracy(run_dir, rt_slice) == metrics["accuracy"]
