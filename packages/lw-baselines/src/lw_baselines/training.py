"""Training the receiver-side baselines (LoRA, DoRA, prompt tuning) with the loss on the answer only.

Each training example is the task's prompt (with the input text) followed by the gold answer's
verbalizer tokens; labels are -100 on every prompt (and padding, BOS, soft-token) position, so only
the answer tokens are predicted. The LM head runs only on the positions that predict an answer token.

Selection: every learning rate of the grid trains from the same initialisation; validation accuracy
(then NLL) at every `eval_every` steps picks the learning rate and the step. Test is never looked at.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from lw_core.errors import LwError
from lw_core.lm import FrozenLM
from lw_core.options import TrainingOptions
from lw_tasks import EvalResult, Example, Task, evaluate
from tqdm.auto import tqdm

from lw_baselines.common import _help
from lw_baselines.scoring import better

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


def lr_at(step: int, steps: int, base: float, warmup_ratio: float) -> float:
    warmup = max(1, int(round(steps * warmup_ratio)))
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * progress))


def train_and_select(
    make: Callable[[], Trainable], task: Task, settings: TrainFields, *, seed: int, batch_size: int,
    progress: bool = True,
) -> Selection:
    """Train one fresh copy per learning rate; pick (lr, step) on validation."""
    learning_rates = list(settings.lr)
    train = task.split("train")
    checkpoints = sorted({s for s in range(settings.eval_every, settings.steps + 1, settings.eval_every)} | {settings.steps})
    best: Selection | None = None
    history: list[dict[str, Any]] = []
    for lr in learning_rates:
        generator = torch.Generator().manual_seed(seed)  # same data order for every learning rate
        torch.manual_seed(seed)  # same initialisation for every learning rate
        trainable = make()
        params = trainable.parameters()
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=settings.weight_decay)
        order: list[int] = []
        started = time.perf_counter()
        bar = tqdm(range(settings.steps), desc=f"train lr={lr:g}", disable=not progress, leave=False)
        running = None
        for step in bar:
            if len(order) < settings.batch_size:
                order += torch.randperm(len(train), generator=generator).tolist()
            batch = [train[i] for i in order[: settings.batch_size]]
            del order[: settings.batch_size]
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, settings.steps, lr, settings.warmup)
            loss = trainable.loss(task, batch)
            if not torch.isfinite(loss):
                raise LwError(f"non-finite loss {loss.item()} at step {step} (lr {lr:g}); lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
            optimizer.step()
            running = loss.item() if running is None else 0.9 * running + 0.1 * loss.item()
            bar.set_postfix(loss=f"{running:.4f}")
            if step + 1 in checkpoints:
                val = evaluate(trainable.scorer(), task, "validation", batch_size=batch_size, progress=False)
                entry = {"lr": lr, "step": step + 1, "train_loss": round(running, 5),
                         "val_accuracy": val.metrics["accuracy"], "val_nll": val.metrics.get("nll"),
                         "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
                history.append(entry)
                log.info("lr %g step %d: loss %.4f, val accuracy %.4f", lr, step + 1, running, val.metrics["accuracy"])
                if best is None or better(val, best.validation):
                    best = Selection(lr, step + 1, trainable.state(), val, history, trainable)
        bar.close()
    assert best is not None
    best.history = history
    return best
