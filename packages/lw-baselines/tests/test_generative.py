"""The baselines on a generative (QA) task, on tiny random models and the toy two-field QA task: the
methods that answer it (zero-shot, LoRA / DoRA, the answer relay) generate, and are scored by EM / F1
through the shared evaluator; every other method refuses it in one line before any model loads."""

import json
from pathlib import Path

import pytest
import torch
from lw_baselines.common import METHODS, Models
from lw_baselines.methods.finetune import LoraMethodConfig, LoraTrainable
from lw_baselines.methods.relay import GeneratedAnswerRelay
from lw_baselines.runner import make_config, parse_spec, run_method, run_suite, summary_table
from lw_core.errors import LwError
from lw_tasks import GenerationScorer, evaluate
from lw_tasks.generative import ANSWER_END, reference_line_ids, teacher_forced_ce
from lw_tasks.testing import toy_qa_task

FAST = {"steps": 4, "eval_every": 2, "batch_size": 4, "lr": [1e-3], "max_new_tokens": 4}
GENERATIVE = {
    "zero-shot": {},
    "zero-shot-calibrated": {},
    "lora": FAST,
    "dora": FAST,
    "text-relay-answer": {"max_new_tokens": 4},
}


@pytest.fixture
def qa(common):
    return toy_qa_task(), {**common, "task": "toy-qa", "max_test_examples": 4, "max_validation_examples": 4}


def _record(metrics: dict) -> tuple[dict, Path]:
    run_dir = Path(metrics["run_dir"])
    return json.loads((run_dir / "run.json").read_text()), run_dir


def test_the_generative_methods_are_the_expected_ones():
    assert {n for n in METHODS.names() if METHODS.get(n).generative} == set(GENERATIVE)


@pytest.mark.parametrize("spec", list(GENERATIVE))
def test_method_answers_a_qa_task_scored_by_em_and_f1(spec, qa, models):
    task, common = qa
    method, model = parse_spec(spec)
    metrics = run_method(method, make_config(method, {**common, **GENERATIVE[spec]}, model), task=task, models=models)
    record, run_dir = _record(metrics)
    flat = record["status"] == "completed" and record["metrics"]
    assert flat and flat["n"] == 4 and 0.0 <= flat["f1"] <= 1.0 and 0.0 <= flat["em"] <= flat["f1"] + 1e-9
    assert "accuracy" not in flat and "val_f1" in flat and "val_accuracy" not in flat
    test = [json.loads(line) for line in (run_dir / "predictions_test.jsonl").read_text().splitlines()]
    assert len(test) == 4 and all({"output", "references", "em", "f1"} <= set(p) for p in test)
    if spec in ("lora", "dora"):
        assert flat["trainable_params"] > 0 and 0.0 <= flat["first_token_accuracy"] <= 1.0
        selected = json.loads((run_dir / "selected.json").read_text())
        assert [h["step"] for h in selected["history"]] == [2, 4] and "val_f1" in selected["history"][0]
        assert flat["answer_tokens"] == 8 and flat["max_new_tokens"] == 4
    if spec == "text-relay-answer":
        assert 0.0 <= flat["sender_f1"] <= 1.0 and "sender_em" in flat and flat["message_bytes"] >= 0
        assert flat["sender_seconds_per_example"] > 0


def test_lora_trains_the_bridges_generative_loss_after_the_text(qa, receiver):
    """One implementation: LoRA's QA loss is the bridge's teacher-forced CE of the answer line (its end of
    line included, cut to --answer-tokens) after the text prompt, and it learns from it."""
    task, _ = qa
    config = LoraMethodConfig(task="toy-qa", answer_tokens=2, lr=[1e-2])
    torch.manual_seed(0)
    trainable = LoraTrainable(receiver, config, dora=False, generative=True)
    batch = task.split("train")[:4]
    targets = reference_line_ids(trainable.lm, batch)
    assert all(t[-len(receiver.token_ids(ANSWER_END)):] == receiver.token_ids(ANSWER_END) for t in targets)
    prefix = trainable.lm.embed_texts([task.prompt(e) for e in batch])
    loss = trainable.loss(task, batch)
    assert loss.item() == pytest.approx(teacher_forced_ce(trainable.lm, prefix, targets, 2)[0].item())
    optimizer = torch.optim.AdamW(trainable.parameters(), lr=1e-2)
    for _ in range(5):
        optimizer.zero_grad()
        trainable.loss(task, batch).backward()
        optimizer.step()
    assert trainable.loss(task, batch).item() < loss.item()
    # it answers by generation, as the bridge does (greedy, first line), not by an answer set
    assert isinstance(trainable.scorer(), GenerationScorer)


def test_answer_relay_hands_the_senders_answer_to_the_receiver(qa, sender, receiver, monkeypatch):
    task, _ = qa
    relay = GeneratedAnswerRelay(sender, receiver, max_new_tokens=4)
    seen = []
    original = relay.receiver.generate
    monkeypatch.setattr(relay.receiver, "generate", lambda t, ex: seen.extend(e.text for e in ex) or original(t, ex))
    examples = task.split("test")[:3]
    outputs = relay.generate(task, examples)
    own = GenerationScorer(sender, 4).generate(task, examples)
    assert seen == own == [relay.sender_answers[e.id] for e in examples]
    assert outputs == GenerationScorer(receiver, 4).generate(task, [e.__class__(id=e.id, text=m) for e, m in
                                                                   zip(examples, own, strict=True)])
    assert relay.times.examples == 3 and relay.times.messages == own
    assert evaluate(relay, task, "test", progress=False).metrics["n"] == len(task.split("test"))


@pytest.mark.parametrize("spec", sorted(set(METHODS.names()) - set(GENERATIVE)))
def test_other_methods_refuse_a_qa_task_before_loading_models(spec, qa, tmp_path):
    task, common = qa
    method, model = parse_spec(spec)
    config = make_config(method, common, model)
    with pytest.raises(LwError) as err:
        run_method(method, config, task=task, models=Models(device="cpu"))  # nothing loaded, nothing loadable
    message = str(err.value)
    assert "\n" not in message and f"method {spec!r} scores a finite answer set" in message
    assert "task 'toy-qa' is generative" in message and "lora" in message and "text-relay-answer" in message
    assert not (tmp_path / "runs" / "toy-qa").exists()


def test_the_suite_on_a_qa_task_runs_what_answers_it(qa, models, caplog):
    task, common = qa
    with caplog.at_level("INFO", logger="lw.baselines"):
        results = run_suite(["zero-shot", "probe", "few-shot", "text-relay-answer"], common, task=task, models=models,
                            options=["max_new_tokens=4"])
    assert [r["method"] for r in results] == ["zero-shot", "text-relay-answer"]
    assert all(r["status"] == "completed" for r in results)
    assert "skipping probe, few-shot" in caplog.text
    table = summary_table(results)
    assert "F1 " in table and "(EM " in table
    with pytest.raises(LwError, match="none of the methods asked for answers it"):
        run_suite(["probe"], common, task=task, models=models)
