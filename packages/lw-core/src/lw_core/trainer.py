"""The training loop every trained method runs (the bridge, LoRA, DoRA, prompt tuning), on accelerate.

A method describes what it trains as a `Recipe` (its parameters, each step's examples, the loss of a
batch, a validation, what to keep of the best step, what else its checkpoint holds); `train_loop` does
the rest the same way for all of them:

- AdamW and `cosine_schedule`, stepped once per global step; each process trains on its share
  (`[rank::world]`) of the step's global batch, weighed by its size so that DDP's average of the
  gradients is the batch's, `accelerator.backward`, `clip_grad_norm_`; the logged loss and terms are
  the global batch's means (`batch_means`), the same with any number of processes;
- with `LoopSettings.ema` > 0, an exponential moving average of the parameters (Polyak averaging) is
  what validation scores and `keep_best` keeps (swapped in for them, then out again), checkpointed too;
- validation every `eval_every` steps and at the last step; the best step is the highest score, then
  the lowest NLL, and only a better step than `LoopSettings.best` (a learning-rate grid's best so far)
  calls `keep_best`;
- a resumable checkpoint (`save_training_state`: the recipe's files, tensors and JSON state, the
  optimizer, schedule and every RNG state) every `checkpoint_every` steps, at the last step and on
  SIGTERM / SIGUSR1 (`lw_core.preemption`), which then exits with code 143; the same call resumes from it;
- a non-finite loss on any process stops every process with an LwError that names the kept checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from lw_core.errors import LwError
from lw_core.preemption import PreemptionFlag, stop_for_preemption
from lw_core.training import (
    Checkpoint,
    cosine_schedule,
    find_training_state,
    load_training_state,
    save_training_state,
)

if TYPE_CHECKING:
    from accelerate import Accelerator

log = logging.getLogger("lw.trainer")


@dataclass
class Validation:
    """One validation of the model in training: `score` (higher is better), `nll` (breaks ties, lower is
    better; None when there is none) and what the recipe keeps of it (`details`)."""

    score: float
    nll: float | None = None
    details: Any = None


@dataclass(frozen=True)
class Best:
    """The best validated step so far."""

    step: int
    score: float
    nll: float | None = None

    @staticmethod
    def beaten_by(validation: Validation, best: Best | None) -> bool:
        if best is None:
            return True
        if validation.score != best.score:
            return validation.score > best.score
        return validation.nll is not None and (best.nll is None or validation.nll < best.nll)


@dataclass
class StepResult:
    """What one optimizer step did (`step` counts the steps done, this one included)."""

    step: int
    loss: float
    grad_norm: float
    lr: float
    terms: dict[str, float]
    validation: Validation | None


def _nothing(*args: Any) -> None:
    return None


@dataclass
class Recipe:
    """What a method trains and how; every callable runs on every process except `keep_best` (the main
    process only). `model`, when given, is prepared by accelerate (DDP over several processes) and
    handed to `loss` as the first argument."""

    parameters: list[torch.nn.Parameter]
    batch: Callable[[int], Sequence[int]]
    """The global batch of a step (0-based): indices of training examples, called once per step."""
    loss: Callable[[Any, Sequence[int]], tuple[torch.Tensor, dict[str, float]]]
    """(prepared model, this process's share of the batch) → (loss, terms to log)."""
    validate: Callable[[], Validation]
    keep_best: Callable[[int, Validation], Any]
    non_finite: Callable[[int, float, Path | None], str]
    """(steps done before this one, the loss, the kept checkpoint) → the error's message."""
    model: torch.nn.Module | None = None
    after_step: Callable[[StepResult], Any] = _nothing
    state: Callable[[], dict[str, Any]] = dict
    """The recipe's JSON state in the checkpoint (next to the loop's `step`, `best_*`, `train_seconds`)."""
    tensors: Callable[[], dict[str, torch.Tensor]] = dict
    write: Callable[[Path], Any] | None = None
    """Writes the recipe's own files into a checkpoint folder (a model's `save_pretrained`)."""
    restore: Callable[[Checkpoint], Any] = _nothing
    """Resumes from a loaded checkpoint; runs before the optimizer and RNG states are restored."""
    generators: dict[str, torch.Generator] = field(default_factory=dict)


@dataclass
class LoopSettings:
    steps: int
    lr: float
    weight_decay: float
    warmup: float
    grad_clip: float
    eval_every: int
    checkpoint_every: int
    checkpoint_dir: Path | None = None
    """None: no checkpoints, no resume and no preemption handling."""
    resume: bool = True
    best: Best | None = None
    description: str = "train"
    progress: bool = True
    leave_progress: bool = True
    ema: float = 0.0
    """Decay of the parameters' moving average that is validated and kept (0 = the parameters themselves)."""


EMA_PREFIX = "_ema."


class ParameterAverage:
    """An exponential moving average of `parameters`, with the usual warm-up of the decay
    (min(decay, (1 + t) / (10 + t)) at step t, so early steps are not frozen in), and `swapped_in`:
    the parameters hold the average inside the block and their own values again after it.
    (torch.optim.swa_utils' EMA has a fixed decay and averages a deep copy of the module; this
    averages the trained tensors in place of a copy, with the warm-up.)"""

    def __init__(self, parameters: list[torch.nn.Parameter], decay: float):
        self.parameters, self.decay = parameters, decay
        self.average = [p.detach().clone() for p in parameters]

    @torch.no_grad()
    def update(self, step: int) -> None:
        weight = 1 - min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(self.average, [p.detach() for p in self.parameters], weight)

    @contextlib.contextmanager
    def swapped_in(self):
        own = [p.detach().clone() for p in self.parameters]
        with torch.no_grad():
            for p, a in zip(self.parameters, self.average, strict=True):
                p.copy_(a)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, o in zip(self.parameters, own, strict=True):
                    p.copy_(o)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f"{EMA_PREFIX}{i}": a for i, a in enumerate(self.average)}

    def restore(self, tensors: dict[str, torch.Tensor]) -> None:
        if f"{EMA_PREFIX}0" not in tensors:
            raise LwError("training checkpoint has no parameter average (it was written without --ema); "
                          "use another --output-dir")
        for i, a in enumerate(self.average):
            a.copy_(tensors[f"{EMA_PREFIX}{i}"])


@dataclass
class LoopState:
    """The loop's own progress, checkpointed as JSON."""

    step: int = 0
    best: Best | None = None
    train_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        best = self.best
        return {
            "step": self.step,
            "best_step": best and best.step,
            "best_val": best and best.score,
            "best_nll": best and best.nll,
            "train_seconds": self.train_seconds,
        }

    @staticmethod
    def from_json(state: dict[str, Any]) -> LoopState:
        best = None
        if state.get("best_step") is not None:
            best = Best(state["best_step"], state["best_val"], state.get("best_nll"))
        return LoopState(state["step"], best, state.get("train_seconds", 0.0))


def any_process(accelerator: Accelerator, flag: bool | torch.Tensor) -> bool:
    """Whether `flag` is true on any process (a signal may reach the processes at different steps)."""
    if accelerator.num_processes == 1:
        return bool(flag)
    return bool(accelerator.reduce(torch.tensor([float(flag)], device=accelerator.device), "sum").item() > 0)


@contextlib.contextmanager
def below_the_bar(bar: tqdm) -> Iterator[None]:
    """Lines logged inside start on their own line: on a terminal the bar is cleared and drawn again
    after them; in a redirected log (which keeps every draw of the bar, no newline) a newline ends it."""
    if bar.disable:
        yield
    elif bar.fp.isatty():
        with tqdm.external_write_mode(file=bar.fp):
            yield
    else:
        bar.fp.write("\n")
        yield


def batch_means(accelerator: Accelerator, values: dict[str, float], share: float) -> dict[str, float]:
    """The global batch's means of `values`, each process's means over its share (`share`: its fraction
    of the batch); with one process, `values` themselves."""
    if accelerator.num_processes == 1:
        return dict(values)
    weighed = torch.tensor([v * share for v in values.values()], dtype=torch.float64, device=accelerator.device)
    return dict(zip(values, accelerator.reduce(weighed, "sum").tolist(), strict=True))


def train_loop(
    recipe: Recipe, settings: LoopSettings, accelerator: Accelerator, preemption: PreemptionFlag | None = None
) -> LoopState:
    """Train `recipe` for `settings.steps` steps, resuming from `settings.checkpoint_dir` when it holds a
    checkpoint (and `settings.resume`). `preemption`: a flag the caller holds over more than this loop
    (a grid of runs); by default the loop holds its own while it checkpoints."""
    optimizer = torch.optim.AdamW(recipe.parameters, lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = cosine_schedule(optimizer, settings.steps, settings.warmup)
    folder = settings.checkpoint_dir
    state = LoopState(best=settings.best)
    average = ParameterAverage(recipe.parameters, settings.ema) if settings.ema > 0 else None

    def restore(checkpoint: Checkpoint) -> None:
        own = {k: v for k, v in checkpoint.tensors.items() if not k.startswith(EMA_PREFIX)}
        recipe.restore(Checkpoint(checkpoint.path, checkpoint.state, own))
        if average is not None:
            average.restore(checkpoint.tensors)

    def tensors() -> dict[str, torch.Tensor]:
        return {**recipe.tensors(), **(average.tensors() if average is not None else {})}

    found = find_training_state(folder) if folder is not None and settings.resume else None
    if found is not None:
        checkpoint = load_training_state(found, optimizer, scheduler, generators=recipe.generators, read=restore)
        state = LoopState.from_json(checkpoint.state)
        log.info(
            "%s: resuming from %s at step %d of %d", settings.description, found, state.step, settings.steps
        )
    # The scheduler stays outside `prepare`: accelerate would step it once per process per step, but each
    # step here is one global batch split over the processes. The recipe has placed its tensors already.
    if recipe.model is not None:
        model, optimizer = accelerator.prepare(recipe.model, optimizer, device_placement=[False, False])
    else:
        model, optimizer = None, accelerator.prepare(optimizer, device_placement=[False])
    rank, world = accelerator.process_index, accelerator.num_processes
    bar = tqdm(
        range(state.step, settings.steps),
        initial=state.step,
        total=settings.steps,
        desc=settings.description,
        leave=settings.leave_progress,
        disable=not (accelerator.is_main_process and settings.progress),
    )
    with contextlib.ExitStack() as stack:
        if preemption is None and folder is not None:
            preemption = stack.enter_context(PreemptionFlag())
        for step in bar:
            started = time.perf_counter()
            batch = list(recipe.batch(step))
            share = batch[rank::world]
            loss, terms = recipe.loss(model, share)
            if any_process(accelerator, not torch.isfinite(loss)):  # every process stops, none waits forever
                kept = find_training_state(folder) if folder is not None else None
                raise LwError(recipe.non_finite(step, loss.item(), kept))
            logged = batch_means(accelerator, {"loss": loss.item(), **terms}, len(share) / len(batch))
            optimizer.zero_grad(set_to_none=True)
            # DDP averages the processes' gradients: a share's weight makes that the whole batch's gradient.
            accelerator.backward(loss * (len(share) * world / len(batch)) if world > 1 else loss)
            grad_norm = accelerator.clip_grad_norm_(recipe.parameters, settings.grad_clip)
            optimizer.step()
            scheduler.step()
            if average is not None:
                average.update(step)
            state.train_seconds += time.perf_counter() - started
            state.step = done = step + 1
            last = done == settings.steps
            validation = None
            if done % settings.eval_every == 0 or last:
                with average.swapped_in() if average is not None else contextlib.nullcontext():
                    validation = recipe.validate()
                    if Best.beaten_by(validation, state.best):
                        state.best = Best(done, validation.score, validation.nll)
                        if accelerator.is_main_process:
                            recipe.keep_best(done, validation)
            loss_value = logged.pop("loss")
            with below_the_bar(bar) if validation is not None else contextlib.nullcontext():
                if validation is not None and accelerator.is_main_process:  # the log shows progress without a bar
                    log.info("%s: step %d of %d, loss %.4f, validation %.4f (best %.4f at step %d), %.2f s/step",
                             settings.description, done, settings.steps, loss_value, validation.score,
                             state.best.score, state.best.step, state.train_seconds / done)
                recipe.after_step(
                    StepResult(done, loss_value, float(grad_norm), scheduler.get_last_lr()[0], logged, validation)
                )
            bar.set_postfix(loss=f"{loss_value:.3f}", best=f"{state.best.score:.3f}" if state.best else "-")
            stop = preemption is not None and any_process(accelerator, preemption.requested)
            if (
                folder is not None
                and accelerator.is_main_process
                and (done % settings.checkpoint_every == 0 or last or stop)
            ):
                save_training_state(
                    folder,
                    optimizer,
                    scheduler,
                    {**state.to_json(), **recipe.state()},
                    tensors=tensors(),
                    write=recipe.write,
                    generators=recipe.generators,
                )
            if stop and not last:
                accelerator.wait_for_everyone()  # the checkpoint is written before any process exits
                stop_for_preemption(f"step {done}")
    bar.close()
    accelerator.wait_for_everyone()
    return state
