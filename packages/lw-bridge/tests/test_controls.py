"""lw-train's controls on the same evaluator, on tiny models: the text upper bound and the token-budget
control at the message's wire bytes (layouts (a) and (b)), and the interlingua (layout (c)): one message,
two receivers, each scored, and joint rescoring of their answers."""

import dataclasses
import json
from types import SimpleNamespace

import pytest
import torch
from lw_bridge import trainer
from lw_bridge.bridge import Bridge
from lw_bridge.config import TrainConfig
from lw_bridge.controls import token_budget_reference
from lw_bridge.inputs import EncoderInputs
from lw_bridge.layouts import cut_sender_part
from lw_bridge.scorer import BridgeScorer
from lw_bridge.testing import toy_qa_task as _qa_task
from lw_core import Embedded, FrozenLM
from lw_core.models import model_tag
from lw_tasks import GenerationScorer, evaluate, load_task
from lw_tasks.budget import truncate_bytes
from lw_tasks.generative import answer_line_ids

CALLER = SimpleNamespace(eval_batch_size=4, max_new_tokens=3, progress=False)  # what the controls read of lw-train's config

TINY = dict(layer=2, steps=4, batch_size=8, eval_every=2, lr=3e-3, d_model=32, depth=1, heads=2, num_latents=4,
            num_soft_tokens=4, d_z=8, device="cpu", max_validation_examples=8, answer_tokens=2, max_new_tokens=3)
LAYOUT_B = dict(receiver_reads_text=True, receiver_text_fields=["question"], sender_reads="text")


@pytest.fixture()
def env(qa_env):
    return qa_env


def test_the_budget_control_cuts_only_what_the_message_stands_for():
    task, example = _qa_task(), _qa_task().split("test")[0]
    def cut(text):
        return text[:10]
    assert cut_sender_part(task, [], example, cut) == example.text[:10]  # layout (a): the whole input
    passage, question = f"Context: {example.fields['context']}", f"Question: {example.fields['question']}"
    assert cut_sender_part(task, ["question"], example, cut) == f"{passage[:10]}\n{question}"  # (b): the question whole


def test_layout_b_reports_the_text_upper_bound_and_the_token_budget_control_at_the_message_bytes(
        env, model_dirs, capsys):
    config = TrainConfig(task="toy-qa", sender=model_dirs["sender"], receivers=[model_dirs["receiver"]],
                         output_dir=str(env / "b"), compare_zero_shot=True, token_budget_wire="int4",
                         **TINY, **LAYOUT_B)
    metrics = trainer.train(config)
    # one message of 4 x 8 values at int4: 16 bytes of codes and one fp16 scale
    assert metrics["token_budget_wire"] == "int4" and metrics["token_budget_bytes"] == metrics["wire_bytes_int4"] == 18
    assert {"f1_wire_int4", "em_wire_int4", "zero_shot_f1", "zero_shot_em", "token_budget_f1", "token_budget_em",
            "sender_only_bytes_mean"} <= set(metrics)
    assert metrics["token_budget_text_bytes_mean"] <= 18 < metrics["sender_only_bytes_mean"]

    # The control, rebuilt by hand: the receiver reads the passage line cut to 18 bytes and the question whole.
    task, receiver = _qa_task(), FrozenLM.load(model_dirs["receiver"], dtype="fp32", device="cpu")
    cut = [dataclasses.replace(e, text=truncate_bytes(receiver, f"Context: {e.fields['context']}", 18)
                               + f"\nQuestion: {e.fields['question']}") for e in task.split("test")]
    by_hand = evaluate(GenerationScorer(receiver, 3), dataclasses.replace(task, splits={"test": cut}), "test",
                       progress=False)
    assert (metrics["token_budget_f1"], metrics["token_budget_em"]) == (by_hand.metrics["f1"], by_hand.metrics["em"])
    full = evaluate(GenerationScorer(receiver, 3), task, "test", progress=False)  # the text upper bound
    assert (metrics["zero_shot_f1"], metrics["zero_shot_em"]) == (full.metrics["f1"], full.metrics["em"])

    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("toy-qa test f1: bridge ") and "reading the text (upper bound)" in line
    assert "bridge at int4 (18 B message)" in line and "token budget (18 B of" in line and "B passage" in line
    record = json.loads((env / "b" / "run.json").read_text())
    assert record["metrics"]["token_budget_f1"] == metrics["token_budget_f1"]


def test_the_budget_control_is_cut_with_the_receivers_tokenizer_and_cached_per_cut(env, model_dirs):
    task, receiver = _qa_task(), FrozenLM.load(model_dirs["receiver"], dtype="fp32", device="cpu")
    small = token_budget_reference(receiver, task, [], 12, CALLER)
    large = token_budget_reference(receiver, task, [], 4096, CALLER)
    assert small["text_bytes_mean"] <= 12 and large["text_bytes_mean"] == pytest.approx(
        sum(len(e.text.encode()) for e in task.split("test")) / len(task.split("test")), abs=0.05)
    assert len(list((env / "cache" / "zero_shot").glob("*.json"))) == 2
    other = dataclasses.replace(task, template="{question}\n{text}\nAnswer:")  # cannot replace the input: skipped
    assert token_budget_reference(receiver, other, [], 12, CALLER) is None


def _logprob(receiver: FrozenLM, prefix: Embedded, i: int, answer: str) -> float:
    """A candidate's summed log-prob after example i's prefix, by the reference (one full forward) path."""
    n = int(prefix.lengths[i])
    one = Embedded(prefix.embeds[i : i + 1, :n], prefix.mask[i : i + 1, :n])
    return receiver.score_answers_full(one, [answer_line_ids(receiver, answer)]).logprobs[0, 0].item()


def test_layout_c_one_message_two_receivers_each_scored_and_jointly_rescored(env, model_dirs, capsys):
    receivers = [model_dirs["receiver"], model_dirs["sender"]]  # a Gemma3 and a Llama: other tokenizers, widths
    config = TrainConfig(task="toy-qa", sender=model_dirs["sender"], receivers=receivers, output_dir=str(env / "c"),
                         compare_zero_shot=True, **TINY, **LAYOUT_B)
    metrics = trainer.train(config)
    tag = model_tag(model_dirs["sender"])
    for suffix in ("", f"_{tag}"):
        assert {f"em{suffix}", f"f1{suffix}", f"first_token_accuracy{suffix}", f"zero_shot_f1{suffix}",
                f"token_budget_f1{suffix}"} <= set(metrics)
    assert {"joint_em", "joint_f1", "joint_agreement_rate", "joint_first_receiver_rate"} <= set(metrics)
    out = capsys.readouterr().out.strip().splitlines()
    assert sum(line.startswith("toy-qa test f1: bridge ") for line in out) == 2
    assert out[-1].startswith("toy-qa test f1: joint rescoring of ") and "agreed on" in out[-1]

    run = env / "c"
    answers = [[json.loads(line)["output"] for line in (run / name).read_text().splitlines()]
               for name in ("predictions_test.jsonl", f"predictions_test_{tag}.jsonl")]
    joint = [json.loads(line) for line in (run / "predictions_test_joint.jsonl").read_text().splitlines()]
    task = _qa_task()
    assert [p["id"] for p in joint] == [e.id for e in task.split("test")]
    # The joint answer: of the two receivers' answers, the one with the higher log-prob summed over both
    # receivers, each reading its own soft tokens of the one message (checked by the reference scorer).
    bridge = Bridge.from_pretrained(run / "bridge")
    lms = [FrozenLM.load(name, dtype="fp32", device="cpu") for name in receivers]
    sender = lms[1]
    inputs = EncoderInputs(sender, 2, bridge.config.sender_template)
    examples = task.split("test")
    prefixes = [BridgeScorer(bridge, inputs, lm, r).prefix(examples) for r, lm in enumerate(lms)]
    for i, prediction in enumerate(joint):
        candidates = list(dict.fromkeys([answers[0][i], answers[1][i]]))
        assert prediction["candidates"] == candidates
        totals = [sum(_logprob(lm, prefixes[r], i, c) for r, lm in enumerate(lms)) for c in candidates]
        assert prediction["output"] == candidates[max(range(len(candidates)), key=lambda k: (totals[k], -k))]
        if len(candidates) > 1:
            assert prediction["joint_logprobs"] == pytest.approx(totals, abs=1e-3)
    assert any(len(p["candidates"]) > 1 for p in joint)  # the receivers disagreed somewhere: rescoring decided
    em = sum(p["em"] for p in joint) / len(joint)
    assert metrics["joint_em"] == pytest.approx(em)
    assert metrics["joint_agreement_rate"] == pytest.approx(
        sum(a == b for a, b in zip(*answers, strict=True)) / len(joint))


def test_classification_interlingua_still_trains_and_scores_each_receiver(env, model_dirs, toy_task_file, capsys,
                                                                           monkeypatch):
    monkeypatch.setattr(trainer, "load_task", load_task)  # the real loader: the user's CSV
    receivers = [model_dirs["receiver"], model_dirs["sender"]]
    config = TrainConfig(task=toy_task_file, sender=model_dirs["sender"], receivers=receivers,
                         output_dir=str(env / "cls"), compare_zero_shot=True,
                         **{**TINY, "answer_tokens": 8, "max_new_tokens": 16})
    metrics = trainer.train(config)
    tag = model_tag(model_dirs["sender"])
    for suffix in ("", f"_{tag}"):
        assert {f"accuracy{suffix}", f"zero_shot_calibrated_accuracy{suffix}", f"token_budget_accuracy{suffix}",
                f"accuracy_wire_fp16{suffix}"} <= set(metrics)
    assert "joint_f1" not in metrics
    out = capsys.readouterr().out
    assert "token budget (" in out and "calibrated zero-shot" in out
    assert trainer.method_label(config) == "bridge-interlingua"
    assert torch.isfinite(torch.tensor(metrics["accuracy"]))
