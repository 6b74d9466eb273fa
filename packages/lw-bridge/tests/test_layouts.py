"""QA layout (b) on tiny models: the receiver reads the question as text, the passage reaches it only
through the message (`--receiver-reads-text --receiver-text-fields question`)."""

import dataclasses
import json

import pytest
import torch
from lw_bridge import BridgePipeline, trainer
from lw_bridge.cli import train_main
from lw_bridge.config import TrainConfig
from lw_bridge.layouts import split_fields
from lw_bridge.testing import toy_qa_task as _qa_task
from lw_core import LwError


def test_the_input_template_splits_by_lines_between_receiver_and_sender():
    task = _qa_task()
    split = split_fields(task, ["question"])
    assert (split.receiver_template, split.sender_template) == ("Question: {question}", "Context: {context}")
    with pytest.raises(LwError, match="no input field.*title; its fields: context, question"):
        split_fields(task, ["title"])
    with pytest.raises(LwError, match="the sender would read nothing"):
        split_fields(task, ["context", "question"])
    mixed = dataclasses.replace(task, input_template="{context} asks {question}")
    with pytest.raises(LwError, match="cannot be split"):
        split_fields(mixed, ["question"])
    with pytest.raises(ValueError, match="needs --receiver-reads-text"):
        TrainConfig(receiver_text_fields=["question"])
    with pytest.raises(ValueError, match="needs --receiver-text-fields"):
        TrainConfig(receiver_reads_text=True, sender_fields="all")


def test_sender_fields_all_gives_the_sender_the_whole_input_and_the_receiver_only_its_fields():
    from lw_bridge.build import sender_template

    task = _qa_task()
    base = dict(receiver_reads_text=True, receiver_text_fields=["question"], sender_reads="text")
    assert sender_template(TrainConfig(**base), task) == "Context: {context}"
    both = TrainConfig(**base, sender_fields="all")
    assert sender_template(both, task) == "{text}"
    assert both.identity_hash() != TrainConfig(**base).identity_hash()
    assert TrainConfig(**base, sender_fields="others").identity_hash() == TrainConfig(**base).identity_hash()


@pytest.fixture()
def env(qa_env):
    return qa_env


def test_layout_b_sender_reads_the_passage_and_the_receiver_the_question(env, model_dirs):
    task = _qa_task()
    config = TrainConfig(task="toy-qa", sender=model_dirs["sender"], receivers=[model_dirs["receiver"]], layer=2,
                         steps=4, batch_size=8, eval_every=2, lr=3e-3, d_model=32, depth=1, heads=2, num_latents=4,
                         num_soft_tokens=4, d_z=8, device="cpu", output_dir=str(env / "b"), max_validation_examples=8,
                         compare_zero_shot=False, answer_tokens=2, max_new_tokens=3, receiver_reads_text=True,
                         receiver_text_fields=["question"], sender_reads="text")
    metrics = trainer.train(config)
    assert {"em", "f1", "first_token_accuracy"} <= set(metrics)
    passages = [len(f"Context: {e.fields['context']}".encode()) for e in task.split("test")]
    assert metrics["sender_only_bytes_mean"] == round(sum(passages) / len(passages), 1) < metrics["text_bytes_mean"]

    pipe = BridgePipeline.from_pretrained(env / "b", device="cpu")
    c = pipe.bridge.config
    assert (c.sender_template, c.receiver_template) == ("Context: {context}", "Question: {question}")
    example = task.split("test")[0]
    assert pipe._fresh_inputs().sender_text(example) == f"Context: {example.fields['context']}"
    # The receiver's input: BOS, the K soft tokens, then the question line and the answer cue, no passage.
    scorer, receiver = pipe.scorer(), pipe.receivers[0]
    prefix = scorer.prefix([example])
    prompt = receiver.token_ids(f"Question: {example.fields['question']}\nAnswer:")
    start = len(receiver.bos_ids) + c.num_soft_tokens
    assert int(prefix.lengths[0]) == start + len(prompt)
    assert torch.allclose(prefix.embeds[0, start:], receiver.embed(torch.tensor(prompt)), atol=1e-5)
    predictions = [json.loads(line) for line in (env / "b" / "predictions_test.jsonl").read_text().splitlines()]
    assert [p["id"] for p in predictions] == [e.id for e in task.split("test")]
    # Plain texts carry no passage field: refused in one line, not answered from a wrong prompt.
    with pytest.raises(LwError, match="no field 'context'"):
        pipe.predict(["review 1: the film was great overall"])


def test_a_field_the_task_lacks_is_one_line_before_any_model_loads(env, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_main(["--task", "toy-qa", "--receiver-reads-text", "--receiver-text-fields", "title",
                    "--output-dir", str(env / "bad")])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no input field(s) title" in err[0] and not (env / "bad").exists()
