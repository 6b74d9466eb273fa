"""lw-tasks: tasks with constrained answer sets, splits, prompts and the one evaluator."""

from lw_tasks.task import SPLITS, Example, Scorer, Task

__all__ = ["SPLITS", "Example", "Scorer", "Task"]
