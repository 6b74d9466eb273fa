"""What every baseline shares: the common config, the baselines' registry and the budget (the Method
protocol, the model pool and the runner are lw-tasks': `lw_tasks.methods`, `lw_tasks.runner`).

Every method gets the same task view as the bridge (`Task.budget_view`): the train split cut to
`max_train_examples` (a seeded stratified subset, the bridge's training budget), the validation split
cut to its first `max_validation_examples` (the same for every method and seed: hyper-parameters are
chosen there, never on test) and the whole test split. Texts are those of the task: already
truncated to `task.max_input_words`.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

from lw_core.errors import LwError
from lw_core.options import DEFAULT_RECEIVER, ModelOptions, RuntimeOptions, shared_field
from lw_core.registry import Registry
from lw_core.seeding import stratified_subset
from lw_tasks import BudgetOptions, Task, TaskOptions
from lw_tasks.methods import METHODS as ALL_METHODS
from lw_tasks.methods import Context, Method, Models, Outcome, resolve_model

__all__ = ["Context", "Method", "Models", "Outcome", "resolve_model"]  # the one protocol, re-exported

METHODS: Registry[Method] = Registry("method")
"""The baselines (`lw-baseline METHOD`); lw-tasks' `METHODS` holds them and every other method."""

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


def register(method: Method) -> Method:
    """Register a baseline: into lw-tasks' `METHODS` (every method of the one runner) and into this
    package's `METHODS` (what `lw-baseline` offers), seeing the shared budget view."""
    if method.default_model is not None and not issubclass(method.config, SingleModelConfig):
        raise TypeError(f"single-model method {method.name} needs a config derived from SingleModelConfig")
    method = dataclasses.replace(method, view=method.view or budget_view)
    ALL_METHODS.add(method.name, method)
    return METHODS.add(method.name, method)


def method_label(method: Method, config: Any) -> str:
    """The method's name in records and tables (`lw_tasks.methods.single_model_label`)."""
    return method.label(method, config)


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
