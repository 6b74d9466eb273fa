"""Training the receiver-side baselines (LoRA, DoRA, prompt tuning) with the loss on the answer only.

Each training example is the task's prompt (with the input text) followed by the gold answer's
verbalizer tokens; labels are -100 on every prompt (and padding, BOS, soft-token) position, so only
the answer tokens are predicted. The LM head runs only on the positions that predict an answer token.

Selection: every learning rate of the grid trains from the same initialisation; validation accuracy
(then NLL) at every `eval_every` steps picks the learning rate and the step. Test is never looked at.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from lw_core.errors import LwError
from lw_core.lm import FrozenLM
from lw_core.options import TrainingOptions
from lw_core.training import (
    PREEMPTED_EXIT_CODE,
    PreemptionFlag,
    cosine_schedule,
    find_training_state,
    load_training_state,
    save_training_state,
)
from lw_tasks import EvalResult, Example, Task, evaluate
from tqdm.auto import tqdm

from lw_baselines.common import _help
from lw_baselines.resume import (
    CHECKPOINT_DIR,
    best_record,
    check_grid,
    pack,
    peek_state,
    unpack_best,
    unpack_params,
)
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


def _checkpoint_at(settings: TrainFields) -> set[int]:
    return set(range(settings.eval_every, settings.steps + 1, settings.eval_every)) | {settings.steps}


def train_and_select(
    make: Callable[[], Trainable], task: Task, settings: TrainFields, *, seed: int, batch_size: int,
    progress: bool = True, checkpoint_dir: str | Path | None = None,
) -> Selection:
    """Train one fresh copy per learning rate; pick (lr, step) on validation.

    With a checkpoint folder (`checkpoint_dir`, else the runner's `checkpoints_in`), the whole grid is
    resumable: a checkpoint after every validation (and on SIGTERM / SIGUSR1, which then exits 143,
    recorded as preempted) holds the current learning rate's trainable, optimizer, scheduler, data
    order and RNG states, the history and the best (lr, step) so far with its validation result. The
    same call resumes there: finished learning rates keep their results, the current one continues
    from its last checkpoint, and the result equals an uninterrupted run's."""
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else CHECKPOINT_DIR.get()
    learning_rates = list(settings.lr)
    train = task.split("train")
    checkpoints = _checkpoint_at(settings)
    best: Selection | None = None
    best_index = -1
    history: list[dict[str, Any]] = []
    first, saved = 0, None
    found = find_training_state(folder) if folder is not None else None
    if found is not None:
        saved = peek_state(found)
        check_grid(found, saved, learning_rates, settings.steps, settings.eval_every)
        first, history = saved["lr_index"], saved["history"]
    preemption = PreemptionFlag() if folder is not None else contextlib.nullcontext(None)
    with preemption as flag:
        for index in range(first, len(learning_rates)):
            lr = learning_rates[index]
            generator = torch.Generator().manual_seed(seed)  # same data order for every learning rate
            torch.manual_seed(seed)  # same initialisation for every learning rate
            trainable = make()
            params = trainable.parameters()
            optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=settings.weight_decay)
            scheduler = cosine_schedule(optimizer, settings.steps, settings.warmup)
            order: list[int] = []
            start_step, running, spent = 0, None, 0.0
            if saved is not None and index == first:
                assert found is not None
                loaded = load_training_state(found, optimizer, scheduler, generators={"data": generator})
                unpack_params(params, loaded.tensors, found)
                start_step, order, running, spent = saved["step"], saved["order"], saved["running"], saved["seconds"]
                if saved["best"] is not None:
                    state, validation = unpack_best(saved["best"], loaded.tensors, like=trainable.state())
                    best_index = saved["best"]["lr_index"]
                    owner = trainable if best_index == index else None
                    best = Selection(saved["best"]["lr"], saved["best"]["step"], state, validation, history, owner)
                log.info("resuming from %s: lr %g (%d of %d) at step %d of %d", found, lr, index + 1,
                         len(learning_rates), start_step, settings.steps)

            started = time.perf_counter()
            bar = tqdm(range(start_step, settings.steps), initial=start_step, total=settings.steps,
                       desc=f"train lr={lr:g}", disable=not progress, leave=False)
            for step in bar:
                if len(order) < settings.batch_size:
                    order += torch.randperm(len(train), generator=generator).tolist()
                batch = [train[i] for i in order[: settings.batch_size]]
                del order[: settings.batch_size]
                loss = trainable.loss(task, batch)
                if not torch.isfinite(loss):
                    kept = find_training_state(folder) if folder is not None else None
                    raise LwError(f"non-finite loss {loss.item()} at step {step + 1} (lr {lr:g}); the last good "
                                  f"checkpoint is kept at {kept or 'none yet'}; lower the learning rate")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
                optimizer.step()
                scheduler.step()
                running = loss.item() if running is None else 0.9 * running + 0.1 * loss.item()
                bar.set_postfix(loss=f"{running:.4f}")
                if step + 1 in checkpoints:
                    val = evaluate(trainable.scorer(), task, "validation", batch_size=batch_size, progress=False)
                    entry = {"lr": lr, "step": step + 1, "train_loss": round(running, 5),
                             "val_accuracy": val.metrics["accuracy"], "val_nll": val.metrics.get("nll"),
                             "seconds": round(spent + time.perf_counter() - started, 1)}  # fmt: skip
                    history.append(entry)
                    log.info("lr %g step %d: loss %.4f, val accuracy %.4f", lr, step + 1, running, val.metrics["accuracy"])
                    if best is None or better(val, best.validation):
                        best, best_index = Selection(lr, step + 1, trainable.state(), val, history, trainable), index
                if folder is not None and (step + 1 in checkpoints or flag.requested):
                    state = {"grid": learning_rates, "steps": settings.steps, "eval_every": settings.eval_every,
                             "lr_index": index, "lr": lr, "step": step + 1, "order": order, "running": running,
                             "seconds": spent + time.perf_counter() - started, "history": history,
                             "best": best_record(best, best_index)}  # fmt: skip
                    save_training_state(folder, optimizer, scheduler, state, tensors=pack(params, best),
                                        generators={"data": generator})
                finished = step + 1 == settings.steps and index == len(learning_rates) - 1
                if flag is not None and flag.requested and not finished:
                    log.warning("preemption signal: checkpointed at lr %g step %d; the same command resumes", lr, step + 1)
                    raise SystemExit(PREEMPTED_EXIT_CODE)
            bar.close()
    assert best is not None
    if best.trainable is None:  # chosen before a resume: a fresh copy of its kind (its state is `best.state`)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            best.trainable = make()
    best.history = history
    return best
