"""The task options every command shares: which data and which columns (`TaskOptions`), and how much
of it a method may learn from or select on (`BudgetOptions`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from lw_core.options import check_parents, positive

from lw_tasks.registry import load_task, task_options
from lw_tasks.task import TRAIN_BUDGET, VALIDATION_BUDGET, Task


@dataclass
class TaskOptions:
    task: str = field(default="rt-sentiment", metadata={
        "help": "task name (`lw-tasks list`) or your own .csv/.jsonl/.json/.parquet/.yaml/.toml file"})
    data_dir: str | None = field(default=None, metadata={"help": "embedded / hub tasks: local files of the source"})
    text_column: str | None = field(default=None, metadata={"help": "your own data file: the input text column"})
    label_column: str | None = field(default=None, metadata={"help": "your own data file: the label column"})
    max_input_words: int | None = field(default=None, metadata={"help": "override the task's input budget (words)"})

    def __post_init__(self) -> None:
        if not self.task:
            raise ValueError("--task is required (a task name such as rt-sentiment, or a data file)")
        positive(self, "max_input_words")
        check_parents(self, TaskOptions)

    def load_task(self) -> Task:
        """The task these options name, read with their column / folder / input-budget options."""
        return load_task(self.task, **task_options(self))


@dataclass
class BudgetOptions:
    """How much of a task's data a method that learns or selects may see (the same for every method)."""

    max_train_examples: int = field(default=TRAIN_BUDGET, metadata={
        "help": "training budget shared by every trained method: a seeded stratified train subset"})
    max_validation_examples: int = field(default=VALIDATION_BUDGET, metadata={
        "help": "validation examples (the split's first N) used for every selection"})

    def __post_init__(self) -> None:
        positive(self, "max_train_examples", "max_validation_examples")
        check_parents(self, BudgetOptions)
