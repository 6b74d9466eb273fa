"""lw-train on real SQuAD questions (`squad-olmes`, the `data` extra) with the embedded pair: the bridge
generates answers through its soft tokens and EM / F1 come from that generated text through the shared
evaluator. `-m slow` (a few minutes on a CPU)."""

import dataclasses
import json

import pytest
from lw_bridge import trainer
from lw_bridge.config import TrainConfig
from lw_tasks import load_task
from lw_tasks.evaluate import exact_match, token_f1

pytestmark = pytest.mark.slow

SIZES = {"train": 32, "validation": 8, "test": 12}


LAYOUTS = {"a": {}, "b": {"receiver_reads_text": True, "receiver_text_fields": ["question"]}}
"""(a) the receiver reads only the soft tokens; (b) it reads the question as text, the passage only as the message."""


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_squad_bridge_generates_answers_scored_by_the_shared_evaluator(tmp_path, monkeypatch, layout):
    squad = load_task("squad-olmes", max_input_words=96)
    task = dataclasses.replace(squad, splits={s: squad.split(s)[:n] for s, n in SIZES.items()})
    monkeypatch.setattr(trainer, "load_task", lambda name, **options: task)
    monkeypatch.setenv("LW_RUNS", str(tmp_path / "runs"))
    run_dir = tmp_path / "run"
    config = TrainConfig(task="squad-olmes", steps=6, batch_size=8, eval_every=3, max_train_examples=SIZES["train"],
                         max_validation_examples=SIZES["validation"], max_new_tokens=8, compare_zero_shot=False,
                         output_dir=str(run_dir), dtype="fp32", **LAYOUTS[layout])
    metrics = trainer.train(config)

    assert {"em", "f1", "val_em", "val_f1", "first_token_accuracy"} <= set(metrics) and "accuracy" not in metrics
    assert 0 <= metrics["first_token_accuracy"] <= 1
    assert ("sender_only_bytes_mean" in metrics) == (layout == "b")
    bridge_config = json.loads((run_dir / "bridge" / "bridge_config.json").read_text())
    assert bridge_config["receiver_template"] == {"a": "{text}", "b": "Question: {question}"}[layout]
    predictions = [json.loads(line) for line in (run_dir / "predictions_test.jsonl").read_text().splitlines()]
    assert [p["id"] for p in predictions] == [e.id for e in task.split("test")]
    assert all(isinstance(p["output"], str) and "\n" not in p["output"] for p in predictions)
    # EM / F1 are the SQuAD-normalised scores of the generated text against the references
    references = {e.id: e.references for e in task.split("test")}
    em = [max(exact_match(p["output"], r) for r in references[p["id"]]) for p in predictions]
    f1 = [max(token_f1(p["output"], r) for r in references[p["id"]]) for p in predictions]
    assert metrics["em"] == pytest.approx(sum(em) / len(em)) and metrics["f1"] == pytest.approx(sum(f1) / len(f1))
    history = json.loads((run_dir / "history.json").read_text())
    assert len(history) == 6 and all(r["loss"] == r["loss"] for r in history)
    assert "val_first_token_accuracy" in history[2]
