"""lw-tasks: tasks with constrained answer sets, splits, prompts and the one evaluator."""

from lw_tasks.evaluate import EvalResult, evaluate, flat_metrics, result_from_scores, write_eval
from lw_tasks.options import BudgetOptions, TaskOptions
from lw_tasks.registry import TASKS, load_task, task_names, task_options
from lw_tasks.scoring import (
    ContextualCalibration,
    GenerationScorer,
    ZeroShotScorer,
    calibrate_scores,
    calibration_offset,
    first_line,
    parse_answer,
)
from lw_tasks.spec import RawData, RawRow, TaskSpec, build_task
from lw_tasks.splits import SPLIT_SEED
from lw_tasks.task import CONTENT_FREE, SPLITS, TRAIN_BUDGET, VALIDATION_BUDGET, Example, Scorer, Task

__all__ = [
    "CONTENT_FREE",
    "SPLITS",
    "SPLIT_SEED",
    "TASKS",
    "TRAIN_BUDGET",
    "BudgetOptions",
    "TaskOptions",
    "VALIDATION_BUDGET",
    "ContextualCalibration",
    "EvalResult",
    "Example",
    "GenerationScorer",
    "RawData",
    "RawRow",
    "Scorer",
    "Task",
    "TaskSpec",
    "ZeroShotScorer",
    "build_task",
    "calibrate_scores",
    "calibration_offset",
    "evaluate",
    "first_line",
    "flat_metrics",
    "load_task",
    "parse_answer",
    "result_from_scores",
    "task_names",
    "task_options",
    "write_eval",
]
