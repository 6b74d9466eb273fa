"""The task options every command shares: which data and which columns (`TaskOptions`), and how much
of it a method may learn from or select on (`BudgetOptions`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from lw_core.options import OptionGroup

from lw_tasks.registry import load_task, task_options
from lw_tasks.task import TRAIN_BUDGET, VALIDATION_BUDGET, Task


@dataclass
class TaskOptions(OptionGroup):
    help_title = "task options"
    at_least_one = ("max_input_words",)

    task: str = field(default="rt-sentiment", metadata={
        "help": "task name (`lw-tasks list`) or your own .csv/.jsonl/.json/.parquet/.yaml/.toml file"})
    data_dir: str | None = field(default=None, metadata={"help": "embedded / hub tasks: local files of the source"})
    text_column: str | None = field(default=None, metadata={"help": "your own data file: the input text column"})
    label_column: str | None = field(default=None, metadata={"help": "your own data file: the label column"})
    max_input_words: int | None = field(default=None, metadata={"help": "override the task's input budget (words)"})

    def check_options(self) -> None:
        if not self.task:
            raise ValueError("--task is required (a task name such as rt-sentiment, or a data file)")

    def load_task(self) -> Task:
        """The task these options name, read with their column / folder / input-budget options."""
        return load_task(self.task, **task_options(self))


@dataclass
class BudgetOptions(OptionGroup):
    """How much of a task's data a method that learns or selects may see (the same for every method)."""

    help_title = "data budget"
    at_least_one = ("max_train_examples", "max_validation_examples")

    max_train_examples: int = field(default=TRAIN_BUDGET, metadata={
        "help": "training budget shared by every trained method: a seeded stratified train subset"})
    max_validation_examples: int = field(default=VALIDATION_BUDGET, metadata={
        "help": "validation examples (the split's first N) used for every selection"})
