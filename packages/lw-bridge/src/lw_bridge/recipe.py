"""The bridge as lw-core's `train_loop` recipe: each step's batch of cached sender states, the bridge
objective through the frozen receivers, validation per receiver, the best step's bridge and validation
results, and the checkpoint's bridge files (checked against this run's bridge config on resume)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from lw_core import FrozenLM, LwError
from lw_core.grid import EpochOrder
from lw_core.trainer import Recipe, StepResult, Validation
from lw_core.training import Checkpoint
from lw_tasks import EvalResult, Example, Task, ZeroShotScorer, evaluate, write_eval
from lw_tasks.generative import reference_line_ids
from tqdm.auto import tqdm

from lw_bridge.bridge import Bridge
from lw_bridge.config import TrainConfig
from lw_bridge.inputs import EncoderInputs, pad_states
from lw_bridge.objective import bridge_loss
from lw_bridge.scorer import BridgeScorer
from lw_bridge.selection import first_token_accuracy, mean_nll, receiver_suffix


def teacher_logprobs(
    receiver: FrozenLM, task: Task, examples: Sequence[Example], batch_size: int, answer_rule: str = "full"
) -> torch.Tensor:
    """The receiver's own answer log-probs when it reads the text prompt (for distillation), scored by
    the answer rule the student is trained by."""
    scorer = ZeroShotScorer(receiver, answer_rule=answer_rule)
    rows = []
    with torch.no_grad():
        for start in tqdm(range(0, len(examples), batch_size), desc=f"teacher {receiver.name}", leave=False):
            rows.append(scorer.score(task, examples[start : start + batch_size]))
    return torch.cat(rows)


def reference_ids(receivers: list[FrozenLM], examples: Sequence[Example]) -> list[list[list[int]]]:
    """Generative tasks: each receiver's token ids of each example's first reference
    (`lw_tasks.generative.reference_line_ids`, the target every method trains QA answers by), so the
    teacher-forced CE also teaches the receiver where the answer stops (the first line is kept)."""
    return [reference_line_ids(r, examples) for r in receivers]


@dataclass
class ReceiverScores:
    """A validation's selection metric per receiver (accuracy, or F1 on a generative task) and the
    evaluations behind it."""

    scores: list[float]
    results: list[EvalResult]


@dataclass
class BridgeRecipe:
    config: TrainConfig
    task: Task
    bridge: Bridge
    receivers: list[FrozenLM]
    inputs: EncoderInputs
    train_examples: Sequence[Example]
    val_examples: Sequence[Example]
    best_dir: Path
    """Where the best step's bridge goes (its validation results go to `run_dir`)."""
    run_dir: Path
    device: torch.device
    lr: float
    """This run's peak learning rate (one of `config.lr`)."""
    history: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.generative = self.task.kind == "generative"
        self.answer_ids = [[r.token_ids(v) for v in self.task.verbalizers] for r in self.receivers]
        self.labels = None if self.generative else self.task.labels(self.train_examples)
        self.references = reference_ids(self.receivers, self.train_examples) if self.generative else None
        self.val_references = reference_ids(self.receivers, self.val_examples) if self.generative else None
        self.teachers = None
        if self.config.kd_weight > 0:
            self.teachers = [
                teacher_logprobs(
                    r, self.task, self.train_examples, self.config.eval_batch_size, self.config.answer_rule
                )
                for r in self.receivers
            ]
        self.order = EpochOrder(len(self.train_examples), self.config.batch_size, self.config.seed, reseeded=True)
        self.scorers = [BridgeScorer(self.bridge, self.inputs, r, i) for i, r in enumerate(self.receivers)]

    def recipe(self) -> Recipe:
        return Recipe(
            parameters=list(self.bridge.parameters()),
            model=self.bridge,
            batch=self.batch,
            loss=self.loss,
            validate=self.validate,
            keep_best=self.keep_best,
            non_finite=self.non_finite,
            after_step=self.log_step,
            state=lambda: {"history": self.history},
            write=self.bridge.save_pretrained,
            restore=self.restore,
        )

    def batch(self, step: int) -> list[int]:
        return self.order.batch(step)

    def loss(self, model: torch.nn.Module, idx: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        model.train()
        batch = [self.train_examples[i] for i in idx]
        states, mask = pad_states(self.inputs.get(batch), self.device)
        soft, head_logits = model(states, mask)
        return bridge_loss(
            soft,
            self.bridge,
            self.receivers,
            self.answer_ids,
            None if self.labels is None else self.labels[idx],
            self.config,
            None if self.teachers is None else [t[idx] for t in self.teachers],
            None if self.references is None else [[refs[i] for i in idx] for refs in self.references],
            head_logits,
            self.bridge.receiver_texts(batch),
        )

    def validate(self) -> Validation:
        """Each receiver's validation result through the shared evaluator and the mean of its selection
        metric as the score: accuracy (then NLL), or on a generative task the F1 of the greedy answers, the
        metric the run reports (and LoRA's selection), with their first-token accuracy beside it."""
        results = [
            evaluate(s, self.task, "validation", batch_size=self.config.eval_batch_size,
                     limit=self.config.val_examples, progress=False)
            for s in self.scorers
        ]
        if self.generative:
            for i, (s, result) in enumerate(zip(self.scorers, results, strict=True)):
                result.metrics["first_token_accuracy"] = first_token_accuracy(
                    s, self.val_examples, self.val_references[i], self.config.eval_batch_size)
        metric = "f1" if self.generative else "accuracy"
        scores = [r.metrics[metric] for r in results]
        nll = None if self.generative else mean_nll(results)
        return Validation(sum(scores) / len(scores), nll, ReceiverScores(scores, results))

    def keep_best(self, step: int, validation: Validation) -> None:
        self.bridge.save_pretrained(self.best_dir)
        for r, result in enumerate(validation.details.results):
            write_eval(result, self.run_dir, f"validation{receiver_suffix(self.receivers, r)}")

    def log_step(self, result: StepResult) -> None:
        record = {
            "step": result.step,
            "loss": round(result.loss, 5),
            "grad_norm": round(result.grad_norm, 4),
            "lr": result.lr,
            **({"peak_lr": self.lr} if len(self.config.lr) > 1 else {}),
            **{k: round(v, 5) for k, v in result.terms.items()},
        }
        if result.validation is not None:
            record["val_f1" if self.generative else "val_accuracy"] = result.validation.details.scores
            if self.generative:
                record["val_first_token_accuracy"] = [
                    r.metrics["first_token_accuracy"] for r in result.validation.details.results]
        self.history.append(record)

    def non_finite(self, step: int, loss: float, kept: Path | None) -> str:
        return (
            f"non-finite loss (nan/inf) at step {step}; the last good checkpoint is kept at {kept or 'none yet'}; "
            f"lower --lr (now {self.lr:g})"
        )

    def restore(self, checkpoint: Checkpoint) -> None:
        """The checkpoint's bridge (input statistics included) and history, if its config is this run's."""
        saved = Bridge.from_pretrained(checkpoint.path)
        if not saved.config.fingerprints:  # a checkpoint from before fingerprints: compare the rest
            saved.config.fingerprints = self.bridge.config.fingerprints
        if saved.config != self.bridge.config:
            raise LwError(
                f"checkpoint {checkpoint.path} was trained with another bridge config; use another "
                "--output-dir"
            )
        self.bridge.load_state_dict(saved.state_dict())
        self.history = checkpoint.state["history"]
