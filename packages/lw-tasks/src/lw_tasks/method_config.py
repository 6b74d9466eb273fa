"""The config every method of `lw-baseline` takes (`BaselineConfig`, `SingleModelConfig` for a method that
runs on one model) and the task view every such method sees (`budget_view`): the zero-shot methods
registered here and every baseline of lw-baselines share them.

Every method gets the same task view as the bridge (`Task.budget_view`): the train split cut to
`max_train_examples` (a seeded stratified subset, the bridge's training budget), the validation split
cut to its first `max_validation_examples` (the same for every method and seed: hyper-parameters are
chosen there, never on test) and the whole test split. Texts are those of the task: already
truncated to `task.max_input_words`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lw_core.options import DEFAULT_RECEIVER, ModelOptions, RuntimeOptions, shared_field
from lw_core.seeding import stratified_subset

from lw_tasks.options import BudgetOptions, TaskOptions
from lw_tasks.task import Task

TEST_SUBSET_SEED = 0
"""`--max-test-examples` (smoke runs) cuts test to the same stratified subset for every method and seed."""


@dataclass
class BaselineConfig(RuntimeOptions, BudgetOptions, TaskOptions):
    """Fields every method takes (`lw-baseline METHOD --help` lists the method's own on top)."""

    sender: str = shared_field(ModelOptions, "sender")
    receiver: str = shared_field(ModelOptions, "receivers", default=DEFAULT_RECEIVER, one_value=True,
                                 aliases=["receiver"])
    max_test_examples: int | None = field(
        default=None, metadata={"help": "cut the test split to a fixed stratified subset (smoke runs only)"}
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
        metadata={"help": "the model this method uses: 'sender', 'receiver' or a model name (default: the method's)"},
    )


def budget_view(task: Task, config: BaselineConfig) -> Task:
    """The task every method sees: train and validation cut to the shared budget, test whole (or cut to a
    fixed subset: class-stratified, or a seeded sample of a generative task's questions)."""
    view = task.budget_view(config.max_train_examples, config.max_validation_examples, config.seed)
    if config.max_test_examples is not None and config.max_test_examples < len(task.split("test")):
        test = task.split("test")
        keep = stratified_subset([e.label for e in test], config.max_test_examples, TEST_SUBSET_SEED)
        view.splits["test"] = [test[i] for i in keep]
    return view
