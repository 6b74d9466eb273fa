"""lw-tasks: tasks with constrained answer sets, splits, prompts and the one evaluator."""

from lw_tasks.evaluate import EvalResult, evaluate, flat_metrics, result_from_scores, write_eval
from lw_tasks.options import BudgetOptions, TaskOptions
from lw_tasks.registry import TASKS, load_task, task_names, task_options
from lw_tasks.scoring import (
    ANSWER_RULES,
    DEFAULT_ANSWER_RULE,
    ContextualCalibration,
    GenerationScorer,
    ZeroShotScorer,
    answer_rule_hint,
    answer_token_ids,
    apply_answer_rule,
    calibrate_scores,
    calibration_offset,
    check_answer_rule,
    first_line,
    parse_answer,
    resolve_answer_rule,
    zero_shot_scorer,
)
from lw_tasks.spec import RawData, RawRow, TaskSpec, build_task
from lw_tasks.splits import SPLIT_SEED
from lw_tasks.task import CONTENT_FREE, SPLITS, TRAIN_BUDGET, VALIDATION_BUDGET, Example, Scorer, Task

__all__ = [
    "ANSWER_RULES",
    "answer_rule_hint",
    "CONTENT_FREE",
    "DEFAULT_ANSWER_RULE",
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
    "answer_token_ids",
    "apply_answer_rule",
    "build_task",
    "calibrate_scores",
    "calibration_offset",
    "check_answer_rule",
    "evaluate",
    "first_line",
    "flat_metrics",
    "load_task",
    "parse_answer",
    "resolve_answer_rule",
    "zero_shot_scorer",
    "result_from_scores",
    "task_names",
    "task_options",
    "write_eval",
]
