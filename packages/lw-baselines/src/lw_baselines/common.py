"""What every baseline shares: the common config, the model pool, the method registry and the budget.

Every method gets the same task view as the bridge (`Task.budget_view`): the train split cut to
`max_train_examples` (a seeded stratified subset, the bridge's training budget), the validation split
cut to its first `max_validation_examples` (the same for every method and seed: hyper-parameters are
chosen there, never on test) and the whole test split. Texts are those of the task: already
truncated to `task.max_input_words`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from lw_core.errors import LwError
from lw_core.lm import FrozenLM
from lw_core.options import DEFAULT_DTYPE, DEFAULT_RECEIVER, ModelOptions, RuntimeOptions, shared_field
from lw_core.registry import Registry
from lw_core.run_dirs import method_label as labelled
from lw_core.runs import Run
from lw_core.seeding import stratified_subset
from lw_tasks import BudgetOptions, EvalResult, Task, TaskOptions

log = logging.getLogger("lw.baselines")

TEST_SUBSET_SEED = 0
"""`--max-test-examples` (smoke runs) cuts test to the same stratified subset for every method and seed."""


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclass
class BaselineConfig(RuntimeOptions, BudgetOptions, TaskOptions):
    """Fields every method takes (`lw-baseline METHOD --help` lists the method's own on top)."""

    sender: str = shared_field(ModelOptions, "sender")
    receiver: str = shared_field(ModelOptions, "receivers", default=DEFAULT_RECEIVER, one_value=True,
                                 aliases=["receiver"])
    max_test_examples: int | None = field(
        default=None, metadata=_help("cut the test split to a fixed stratified subset (smoke runs only)")
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_test_examples is not None and self.max_test_examples < 1:
            raise ValueError(f"max_test_examples must be >= 1, got {self.max_test_examples}")


@dataclass
class SingleModelConfig(BaselineConfig):
    """A method that runs on one model: the receiver unless `--model` says otherwise."""

    model: str | None = field(
        default=None,
        metadata=_help("the model this method uses: 'sender', 'receiver' or a model name (default: the method's)"),
    )


class Models:
    """Loaded models by name, shared by the methods of one process (`lw-baseline all` loads each once)."""

    def __init__(self, device: str = "auto", dtype: str = DEFAULT_DTYPE, preloaded: dict[str, FrozenLM] | None = None):
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
    goes into the run's metrics; `selected` records the choices made on validation.
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

    def __post_init__(self) -> None:
        if (self.scorer is None) == (not self.draws):
            raise ValueError("an Outcome has either one scorer or a list of draws")


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


@dataclass(frozen=True)
class Method:
    name: str
    config: type
    run: Callable[[Context], Outcome]
    description: str
    sees: str
    """What information the method gets (for the README and `--help`)."""
    default_model: str | None = "receiver"
    """'receiver' or 'sender' for single-model methods; None for methods that use both."""
    deterministic: bool = False
    """True when the seed changes nothing (no training, no sampling: the train split is not read)."""


METHODS: Registry[Method] = Registry("method")


def register(method: Method) -> Method:
    if method.default_model is not None and not issubclass(method.config, SingleModelConfig):
        raise TypeError(f"single-model method {method.name} needs a config derived from SingleModelConfig")
    return METHODS.add(method.name, method)


def resolve_model(method: Method, config: Any) -> str | None:
    """The model name a single-model method runs on ('sender'/'receiver' are aliases)."""
    if method.default_model is None:
        return None
    chosen = getattr(config, "model", None) or method.default_model
    return {"sender": config.sender, "receiver": config.receiver}.get(chosen, chosen)


def method_label(method: Method, config: Any) -> str:
    """The method's name in records and tables (`lw_core.run_dirs.method_label`): `name`, or
    `name@model` when it runs on a model other than its default one (e.g. `zero-shot@smollm2-135m`)."""
    model = resolve_model(method, config)
    default = {"sender": config.sender, "receiver": config.receiver}.get(method.default_model or "")
    return labelled(method.name, model, default)


def budget_view(task: Task, config: BaselineConfig) -> Task:
    """The task every method sees: train and validation cut to the shared budget, test whole (or cut)."""
    if task.kind != "classification":
        raise LwError(f"lw-baseline methods score a finite answer set; task {task.name!r} is {task.kind}")

    view = task.budget_view(config.max_train_examples, config.max_validation_examples, config.seed)
    if config.max_test_examples is not None and config.max_test_examples < len(task.split("test")):
        test = task.split("test")
        keep = stratified_subset([e.label for e in test], config.max_test_examples, TEST_SUBSET_SEED)
        view.splits["test"] = [test[i] for i in keep]
    return view


def count_trainable(parameters) -> int:
    return sum(p.numel() for p in parameters if p.requires_grad)
