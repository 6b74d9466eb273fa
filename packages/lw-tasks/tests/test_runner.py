"""The one runner: a method's scorer scored on validation and test into its run directory, the record's
metrics, a completed run recognised as done, a method that scores itself, and a config of another
method refused."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from lw_core.errors import LwError
from lw_tasks import Example, Task
from lw_tasks.methods import Method, Outcome
from lw_tasks.runner import CHECKPOINT_DIR, run_method


def make_task() -> Task:
    examples = [Example(id=f"e{i}", text=f"text {i}", label=i % 2) for i in range(6)]
    return Task(name="toy", description="", kind="classification", answers=["a", "b"], verbalizers=[" a", " b"],
                template="{text}\nAnswer:", splits={"train": examples, "validation": examples[:4], "test": examples},
                max_input_words=8)  # fmt: skip


class ParityScorer:
    """Right on every example: the label is the parity of the id."""

    scores_are_logprobs = True

    def score(self, task, examples):
        return torch.tensor([[0.0, -5.0] if int(e.id[1:]) % 2 == 0 else [-5.0, 0.0] for e in examples])


@dataclass
class ToyConfig:
    seed: int = 0
    task: str = "toy"
    device: str = "cpu"
    dtype: str = "fp32"
    progress: bool = False
    eval_batch_size: int = 4
    output_dir: str | None = None


def toy_method(run, **policies) -> Method:
    return Method("toy", ToyConfig, run, "a toy", "nothing", default_model=None, preload=False, **policies)


def test_runner_scores_a_method_into_its_run_dir(tmp_path):
    seen = []

    def run(ctx):
        seen.append(CHECKPOINT_DIR.get())
        return Outcome(scorer=ParityScorer(), trainable_params=3, selected={"lr": 0.1})

    result = run_method(toy_method(run), ToyConfig(), task=make_task(), output_dir=tmp_path / "run")
    assert result["accuracy"] == 1.0 and result["val_accuracy"] == 1.0 and result["n"] == 6
    assert result["method"] == "toy" and result["trainable_params"] == 3
    assert seen == [tmp_path / "run" / "checkpoints"]  # trained methods checkpoint in their run dir
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "completed" and record["metrics"]["accuracy"] == 1.0
    assert record["metrics"]["n_answers"] == len(make_task().answers)  # the report's chance row
    assert json.loads((tmp_path / "run" / "selected.json").read_text()) == {"lr": 0.1}
    assert (tmp_path / "run" / "metrics_test.json").is_file()

    again = run_method(toy_method(lambda ctx: pytest.fail("a completed run ran again")), ToyConfig(),
                       task=make_task(), output_dir=tmp_path / "run")
    assert again["accuracy"] == 1.0


def test_a_method_that_scores_itself_is_recorded_as_it_says(tmp_path):
    def run(ctx):
        return Outcome(evaluated=True, extra={"accuracy": 0.5, "own": 1})

    method = toy_method(run, skip_completed=False, label=lambda m, config: f"toy-seed{config.seed}")
    for _ in range(2):  # not skipped when completed: run again
        result = run_method(method, ToyConfig(), task=make_task(), output_dir=tmp_path / "run")
        assert result == {"accuracy": 0.5, "own": 1, "method": "toy-seed0", "run_dir": str(tmp_path / "run")}
    assert not (tmp_path / "run" / "selected.json").exists()


def test_another_methods_config_is_refused(tmp_path):
    @dataclass
    class OtherConfig(ToyConfig):
        pass

    method = Method("other", OtherConfig, lambda ctx: None, "", "", default_model=None)
    with pytest.raises(LwError, match="takes a OtherConfig, got ToyConfig"):
        run_method(method, ToyConfig(), task=make_task(), output_dir=tmp_path)


class EchoScorer:
    """Answers every question with the passage's last word."""

    def generate(self, task, examples):
        return [e.fields["context"].split()[-2] if e.id.endswith(("0", "2")) else "no" for e in examples]


def test_a_generative_task_is_scored_by_em_f1_and_refused_by_a_method_that_scores_answer_sets(tmp_path):
    from lw_tasks.testing import toy_qa_task

    task = toy_qa_task()
    answering = toy_method(lambda ctx: Outcome(scorer=EchoScorer()), generative=True)
    result = run_method(answering, ToyConfig(task="toy-qa"), task=task, output_dir=tmp_path / "qa")
    assert result["n"] == 8 and 0 < result["em"] <= result["f1"] < 1 and "accuracy" not in result
    assert {"val_em", "val_f1"} <= set(result)
    ran = []
    scoring = toy_method(lambda ctx: ran.append(1))
    with pytest.raises(LwError, match=r"^method 'toy' scores a finite answer set; task 'toy-qa' is generative"):
        run_method(scoring, ToyConfig(task="toy-qa"), task=task, output_dir=tmp_path / "refused")
    assert not ran and not (tmp_path / "refused").exists()
