"""Training the receiver-side baselines (LoRA, DoRA, prompt tuning) with the loss on the answer only.

Each training example is the task's prompt (with the input text) followed by the gold answer's
verbalizer tokens; labels are -100 on every prompt (and padding, BOS, soft-token) position, so only
the answer tokens are predicted. The LM head runs only on the positions that predict an answer token.

On a generative (QA) task the answer is the first reference's line (`lw_tasks.generative`), trained by
the bridge's teacher-forced CE; the trainable generates its answers for validation.

Selection: every learning rate of the grid is one run of lw-core's `train_loop` from the same
initialisation and data order; validation accuracy (then NLL), or F1 on a QA task, at every `eval_every`
steps picks the learning rate and the step across the grid. Test is never looked at.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from lw_core.errors import LwError
from lw_core.grid import EpochOrder, train_grid
from lw_core.lm import FrozenLM
from lw_core.options import TrainingOptions
from lw_core.trainer import LoopSettings, Recipe, StepResult, Validation
from lw_core.training import Checkpoint
from lw_tasks import EvalResult, Example, Task, evaluate
from lw_tasks.runner import CHECKPOINT_DIR

from lw_baselines.common import _help
from lw_baselines.resume import (
    best_record,
    check_grid,
    pack,
    unpack_best,
    unpack_params,
)

log = logging.getLogger("lw.baselines")
IGNORE = -100


@dataclass
class TrainFields(TrainingOptions):
    """The shared training options with the PEFT baselines' defaults (mixed into their configs);
    `lr` is a grid: every learning rate trains from the same start, validation picks one."""

    steps: int = field(default=100, metadata=_help("optimizer steps per learning rate"))
    batch_size: int = field(default=8, metadata=_help("examples per optimizer step"))
    lr: list[float] = field(default_factory=lambda: [1e-3], metadata=_help("learning-rate grid (chosen on validation)"))
    eval_every: int = field(default=50, metadata=_help("validate every N steps (the step is chosen on validation)"))
    warmup: float = field(default=0.1, metadata=_help("linear warm-up share of the steps, then cosine decay"))
    weight_decay: float = field(default=0.0, metadata=_help("AdamW weight decay"))


def answer_batch(lm: FrozenLM, prompts: Sequence[str], answers: Sequence[Sequence[int]]):
    """Right-padded (input_ids, attention_mask, labels) of prompt + answer; labels are -100 except on
    the answer tokens. The prompt is tokenized with the model's own BOS policy, as at scoring time."""
    rows = [lm.tokenizer(p)["input_ids"] for p in prompts]
    width = max(len(r) + len(a) for r, a in zip(rows, answers, strict=True))
    ids = torch.full((len(rows), width), lm.tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for i, (row, answer) in enumerate(zip(rows, answers, strict=True)):
        full = list(row) + list(answer)
        ids[i, : len(full)] = torch.tensor(full)
        mask[i, : len(full)] = 1
        labels[i, len(row) : len(full)] = torch.tensor(list(answer))
    return ids.to(lm.device), mask.to(lm.device), labels.to(lm.device)


def answer_loss(lm: FrozenLM, embeds: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the answer tokens (positions whose label is not -100)."""
    hidden = lm.model.base_model(inputs_embeds=embeds, attention_mask=mask, use_cache=False).last_hidden_state
    targets = labels[:, 1:]
    chosen = targets != IGNORE
    if not bool(chosen.any()):
        raise LwError("a training batch has no answer tokens to predict")
    logits = lm.logits(hidden[:, :-1][chosen]).float()
    return F.cross_entropy(logits, targets[chosen])


def selection_metric(task: Task) -> str:
    """What validation selects on: accuracy (then NLL), or F1 of the generated answers on a QA task."""
    return "f1" if task.kind == "generative" else "accuracy"


def selection_score(result: EvalResult) -> Validation:
    """A validation result as `train_loop` selects on it (`selection_metric`)."""
    if "f1" in result.metrics:
        return Validation(result.metrics["f1"], None, result)
    return Validation(result.metrics["accuracy"], result.metrics.get("nll"), result)


class Trainable(Protocol):
    """One fresh trainable copy (a LoRA-wrapped receiver, a soft prompt)."""

    def parameters(self) -> list[torch.nn.Parameter]: ...

    def loss(self, task: Task, examples: Sequence[Example]) -> torch.Tensor: ...

    def scorer(self) -> Any: ...

    def state(self) -> dict[str, torch.Tensor]: ...


@dataclass
class Selection:
    lr: float
    step: int
    state: dict[str, torch.Tensor]
    validation: EvalResult
    history: list[dict[str, Any]]
    trainable: Any
    """The trainable of the chosen learning rate's run (its state may be a later step's)."""


class GridSearch:
    """The trained baselines' side of lw-core's learning-rate grid (`lw_core.grid.train_grid`): each
    learning rate's recipe (`OneRate`) and the selection across them (the best (lr, step) so far with its
    state and validation, held in every rate's checkpoint, so a resumed grid has it)."""

    def __init__(self, make: Callable[[], Trainable], task: Task, settings: TrainFields, *, seed: int,
                 batch_size: int, progress: bool, folder: Path | None):
        self.make, self.task, self.settings, self.seed = make, task, settings, seed
        self.batch_size, self.progress, self.folder = batch_size, progress, folder
        self.learning_rates = list(settings.lr)
        self.history: list[dict[str, Any]] = []
        self.best: Selection | None = None
        self.best_index = -1

    def run(self) -> Selection:
        from accelerate import Accelerator

        made = {0: OneRate(self, 0)}  # the first rate's trainable says where training runs
        device = made[0].params[0].device
        settings = self.settings
        loop = LoopSettings(steps=settings.steps, lr=self.learning_rates[0], weight_decay=settings.weight_decay,
                            warmup=settings.warmup, grad_clip=settings.grad_clip, eval_every=settings.eval_every,
                            checkpoint_every=settings.eval_every, description="train", progress=self.progress,
                            leave_progress=False, ema=settings.ema)
        train_grid(self.learning_rates, lambda index, lr, folder: (made.pop(index, None) or OneRate(self, index)).recipe(),
                   loop, Accelerator(cpu=device.type == "cpu"), self.folder)
        assert self.best is not None
        if self.best.trainable is None:  # chosen before a resume: a fresh copy of its kind (its state is `best.state`)
            with torch.random.fork_rng():
                torch.manual_seed(self.seed)
                self.best.trainable = self.make()
        self.best.history = self.history
        return self.best


class OneRate:
    """One learning rate of the grid as `train_loop`'s recipe."""

    def __init__(self, grid: GridSearch, index: int):
        self.grid, self.index, self.lr = grid, index, grid.learning_rates[index]
        self.train_examples = grid.task.split("train")
        self.order = EpochOrder(len(self.train_examples), grid.settings.batch_size, grid.seed, reseeded=False)
        torch.manual_seed(grid.seed)  # the same initialisation for every learning rate
        self.trainable = grid.make()
        self.params = self.trainable.parameters()
        self.running: float | None = None
        self.spent, self.started = 0.0, time.perf_counter()

    def recipe(self) -> Recipe:
        return Recipe(parameters=self.params, batch=self.order.batch, loss=self.loss, validate=self.validate,
                      keep_best=self.keep_best, non_finite=self.non_finite, after_step=self.log_step,
                      state=self.state, tensors=lambda: pack(self.params, self.grid.best), restore=self.restore)

    def loss(self, model: None, idx: Sequence[int]) -> tuple[torch.Tensor, dict[str, float]]:
        return self.trainable.loss(self.grid.task, [self.train_examples[i] for i in idx]), {}

    def validate(self) -> Validation:
        grid = self.grid
        val = evaluate(self.trainable.scorer(), grid.task, "validation", batch_size=grid.batch_size, progress=False)
        return selection_score(val)

    def keep_best(self, step: int, validation: Validation) -> None:
        grid = self.grid
        grid.best = Selection(self.lr, step, self.trainable.state(), validation.details, grid.history, self.trainable)
        grid.best_index = self.index

    def log_step(self, result: StepResult) -> None:
        running = result.loss if self.running is None else 0.9 * self.running + 0.1 * result.loss
        self.running = running
        if result.validation is not None:
            score, nll = result.validation.score, result.validation.nll
            name = selection_metric(self.grid.task)
            self.grid.history.append({"lr": self.lr, "step": result.step, "train_loss": round(running, 5),
                                      f"val_{name}": score, "val_nll": nll, "seconds": round(self.seconds(), 1)})
            log.info("lr %g step %d: loss %.4f, val %s %.4f", self.lr, result.step, running, name, score)

    def seconds(self) -> float:
        return self.spent + time.perf_counter() - self.started

    def non_finite(self, step: int, loss: float, kept: Path | None) -> str:
        return (f"non-finite loss {loss} at step {step + 1} (lr {self.lr:g}); the last good checkpoint is kept at "
                f"{kept or 'none yet'}; lower the learning rate")

    def state(self) -> dict[str, Any]:
        grid = self.grid
        return {"grid": grid.learning_rates, "steps": grid.settings.steps, "eval_every": grid.settings.eval_every,
                "lr_index": self.index, "lr": self.lr, "running": self.running, "seconds": self.seconds(),
                "history": grid.history, "best": best_record(grid.best, grid.best_index)}

    def restore(self, checkpoint: Checkpoint) -> None:
        grid, saved = self.grid, checkpoint.state
        check_grid(checkpoint.path, saved, grid.learning_rates, grid.settings.steps, grid.settings.eval_every)
        unpack_params(self.params, checkpoint.tensors, checkpoint.path)
        grid.history = saved["history"]
        self.running, self.spent = saved["running"], saved["seconds"]
        if saved["best"] is not None:
            state, validation = unpack_best(saved["best"], checkpoint.tensors, like=self.trainable.state())
            index = saved["best"]["lr_index"]
            # the trainable of the best's rate: this one, or an earlier rate's replayed before this one
            owner = self.trainable if index == self.index else (grid.best.trainable if grid.best_index == index else None)
            grid.best_index = index
            grid.best = Selection(saved["best"]["lr"], saved["best"]["step"], state, validation, grid.history, owner)


def train_and_select(
    make: Callable[[], Trainable], task: Task, settings: TrainFields, *, seed: int, batch_size: int,
    progress: bool = True, checkpoint_dir: str | Path | None = None,
) -> Selection:
    """Train one fresh copy per learning rate; pick (lr, step) on validation.

    With a checkpoint folder (`checkpoint_dir`, else the runner's `checkpoints_in`), the whole grid is
    resumable: each learning rate checkpoints into its own folder (`lw_core.grid.rate_folder`) after
    every validation (and on SIGTERM / SIGUSR1, which then exits 143, recorded as preempted): its
    trainable, optimizer, scheduler and RNG states, the history and the best (lr, step) so far with its
    validation result. The same call resumes there: finished learning rates load their last checkpoint,
    the current one continues from its own, and the result equals an uninterrupted run's."""
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else CHECKPOINT_DIR.get()
    return GridSearch(make, task, settings, seed=seed, batch_size=batch_size, progress=progress, folder=folder).run()
