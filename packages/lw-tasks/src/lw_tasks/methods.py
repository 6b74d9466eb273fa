"""The one Method protocol: what every method (the bridge, fusion, interlingua, every baseline) hands the
one runner (`lw_tasks.runner.run_method`), the registry downstream packages register their methods into,
and the one holder of loaded models.

A method is its config dataclass, a `run` function (`fit` what it trains, or nothing, and return a scorer
for the shared evaluator, or the metrics it evaluated itself) and the policies the runner asks it for:
its label in records, its run directory, the task view it sees and the device / dtype it runs on."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from lw_core.errors import LwError
from lw_core.lm import FrozenLM
from lw_core.options import DEFAULT_DTYPE
from lw_core.registry import Registry
from lw_core.run_dirs import hashed_run_dir, resolve_runtime
from lw_core.run_dirs import method_label as labelled
from lw_core.runs import Run

from lw_tasks.evaluate import EvalResult
from lw_tasks.task import Task

log = logging.getLogger("lw.methods")


class Models:
    """Loaded models by name, shared by the methods of one process (`lw-baseline all` loads each once)."""

    def __init__(self, device: Any = "auto", dtype: str = DEFAULT_DTYPE, preloaded: dict[str, FrozenLM] | None = None):
        self.device, self.dtype = device, dtype
        self._lms: dict[str, FrozenLM] = dict(preloaded or {})

    def get(self, name: str) -> FrozenLM:
        if name not in self._lms:
            start = time.perf_counter()
            self._lms[name] = FrozenLM.load(name, dtype=self.dtype, device=self.device)
            log.info("loaded %s in %.1fs", name, time.perf_counter() - start)
        return self._lms[name]


@dataclass
class Outcome:
    """What a method hands back to the runner.

    `scorer` is evaluated once on test (and on validation unless `validation` is given). `extra`
    goes into the run's metrics; `selected` records the choices made on validation. A method that
    scores itself (the bridge: each receiver, each wire format) gives `evaluated=True` and its
    metrics in `extra`; the runner then only records them.
    """

    scorer: Any = None
    trainable_params: int = 0
    validation: EvalResult | None = None
    selected: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    after_test: Callable[[EvalResult], dict[str, Any]] | None = None
    """Called with the test result; returns more metrics (e.g. a relay's per-stage times)."""
    draws: list[tuple[Any, EvalResult | None]] = field(default_factory=list)
    """Several (scorer, validation result) draws instead of one scorer (few-shot demonstrations):
    each is evaluated on test; the run reports their mean and std."""
    evaluated: bool = False

    def __post_init__(self) -> None:
        if not self.evaluated and (self.scorer is None) == (not self.draws):
            raise ValueError("an Outcome has either one scorer or a list of draws")


@dataclass
class Runtime:
    """Where a method runs: the device and dtype its record names, this process's rank, and whatever
    the method set up for itself (the bridge's `Accelerator`)."""

    device: Any
    dtype: str
    rank: int = 0
    state: Any = None


@dataclass
class Context:
    """Everything a method's run function sees."""

    config: Any
    task: Task
    """The task view: train / validation cut to the budget, the full test split."""
    full_task: Task
    models: Models
    run: Run | None
    method: Method
    model_name: str | None = None
    """The resolved model of a single-model method."""
    generator: torch.Generator | None = None
    run_dir: Path | None = None
    runtime: Runtime | None = None

    @property
    def progress(self) -> bool:
        return bool(getattr(self.config, "progress", True))

    @property
    def lm(self) -> FrozenLM:
        if self.model_name is None:
            raise LwError(f"method {self.method.name!r} runs on two models; it has no single `lm`")
        return self.models.get(self.model_name)

    @property
    def sender(self) -> FrozenLM:
        return self.models.get(self.config.sender)

    @property
    def receiver(self) -> FrozenLM:
        return self.models.get(self.config.receiver)


def resolve_model(method: Method, config: Any) -> str | None:
    """The model name a single-model method runs on ('sender'/'receiver' are aliases)."""
    if method.default_model is None:
        return None
    chosen = getattr(config, "model", None) or method.default_model
    return {"sender": config.sender, "receiver": config.receiver}.get(chosen, chosen)


def single_model_label(method: Method, config: Any) -> str:
    """`name`, or `name@model` when a single-model method runs on a model other than its default one
    (e.g. `zero-shot@smollm2-135m`): `lw_core.run_dirs.method_label`."""
    if method.default_model is None:
        return method.name
    model = resolve_model(method, config)
    default = {"sender": config.sender, "receiver": config.receiver}.get(method.default_model or "")
    return labelled(method.name, model, default)


def default_runtime(config: Any) -> Runtime:
    return Runtime(*resolve_runtime(config.device, config.dtype))


@dataclass(frozen=True)
class Method:
    name: str
    config: type
    run: Callable[[Context], Outcome | None]
    """Fit (or not) and return the outcome; None on a process that is not rank 0."""
    description: str
    sees: str
    """What information the method gets (for the README and `--help`)."""
    default_model: str | None = "receiver"
    """'receiver' or 'sender' for single-model methods; None for methods that use both."""
    deterministic: bool = False
    """True when the seed changes nothing (no training, no sampling: the train split is not read)."""
    label: Callable[[Method, Any], str] = single_model_label
    """The method's name in records and tables."""
    run_dir: Callable[[Any, str, str], Path] = hashed_run_dir
    """(config, label, task name) → the run directory when `--output-dir` is not given."""
    view: Callable[[Task, Any], Task] | None = None
    """(task, config) → the task the method sees (a budget view); None: the whole task."""
    runtime: Callable[[Any], Runtime] = default_runtime
    """Called before the run directory is opened (a device that is not there fails first)."""
    entry: str = "lw-baseline"
    """The command that runs it (`lw-baseline METHOD`, `lw-train`)."""
    skip_completed: bool = True
    """A completed run directory of the same config is recognised as done, not run again."""
    preload: bool = True
    """Load the method's models before its timed run (loading time is not training time)."""
    generative: bool = False
    """It answers generative (QA) tasks too (generates text scored by EM / F1); a method without it
    scores a finite answer set and refuses a generative task before anything loads."""


METHODS: Registry[Method] = Registry("method")
"""Every registered method of this process: lw-baselines' and lw-bridge's register here on import."""


def check_task_kind(method: Method, task: Task) -> None:
    """A generative task for a method that only scores answer sets: one line naming those that answer it."""
    if task.kind == "generative" and not method.generative:
        able = [name for name in METHODS.names() if METHODS.get(name).generative]
        raise LwError(f"method {method.name!r} scores a finite answer set; task {task.name!r} is generative "
                      f"(EM / F1 on generated answers): methods that answer it: {', '.join(able)}")
