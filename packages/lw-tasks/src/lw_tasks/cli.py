"""`lw-tasks`: list tasks, show one, and run a model's zero-shot evaluation as a run.

    lw-tasks list
    lw-tasks show rt-sentiment
    lw-tasks show my_reviews.csv --text-column review --label-column stars
    lw-tasks eval-zero-shot --task 20ng --receivers smollm2-135m
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lw_core.config import Command, parse_command
from lw_core.errors import LwError, cli_errors
from lw_core.options import DEFAULT_RECEIVER, ModelOptions, RuntimeOptions, apply_threads, shared_field
from lw_core.run_dirs import hashed_run_dir
from lw_registry.text_table import terminal_table

from lw_tasks.options import TaskOptions
from lw_tasks.registry import TASKS, task_options
from lw_tasks.splits import SPLIT_SEED
from lw_tasks.task import SPLITS, Task


# ---- list ---------------------------------------------------------------------------------------
def _n_answers(spec) -> str:
    if spec.kind == "generative":
        return "QA"
    if spec.answers is not None:
        return str(len(spec.answers))
    if isinstance(spec.verbalizers, Mapping):
        return str(len(spec.verbalizers))
    return "data"


@dataclass
class ListConfig:
    """`lw-tasks list` takes no options."""


def cmd_list(config: ListConfig) -> None:
    rows = [("name", "kind", "answers", "budget", "source")]
    for name in TASKS.names():
        spec = TASKS.get(name)
        rows.append((name, spec.kind, _n_answers(spec), f"{spec.max_input_words}w", spec.source))
    print(terminal_table(rows[0], rows[1:]))
    print("\nany .csv / .jsonl / .json / .parquet / .yaml / .toml file also works as a task (see `lw-tasks show --help`)")


# ---- show ---------------------------------------------------------------------------------------
@dataclass
class ShowConfig(TaskOptions):
    task: str = shared_field(TaskOptions, "task", positional=True)
    json: bool = field(default=False, metadata={"help": "print the summary as JSON"})


def describe(task: Task) -> dict[str, Any]:
    """A JSON-able summary of a task: sizes, class balance, answers, one rendered prompt."""
    out: dict[str, Any] = {
        "name": task.name,
        "description": task.description,
        "kind": task.kind,
        "source": task.source,
        "max_input_words": task.max_input_words,
        "split_seed": SPLIT_SEED,
        "sizes": task.sizes(),
        "dropped": task.extra.get("dropped", {}),
    }
    if task.kind == "classification":
        out["answers"] = task.verbalizer_map
        out["class_counts"] = {s: task.class_counts(s) for s in SPLITS}
        out["majority_rate_test"] = max(out["class_counts"]["test"].values()) / len(task.split("test"))
    example = task.split("test")[0]
    out["example"] = {
        "id": example.id,
        "prompt": task.prompt(example),
        "gold": task.answers[example.label] if example.label is not None else list(example.references),
    }
    return out


def cmd_show(config: ShowConfig) -> None:
    task = config.load_task()
    info = describe(task)
    if config.json:
        print(json.dumps(info, indent=2))
        return
    print(f"{task.name}: {task.description}")
    print(f"source: {task.source}")
    print(f"kind: {task.kind}; input budget: {task.max_input_words} words; split seed {SPLIT_SEED}")
    print("sizes: " + ", ".join(f"{s} {n}" for s, n in info["sizes"].items()))
    if info["dropped"]:
        print("dropped: " + ", ".join(f"{k} {v}" for k, v in info["dropped"].items()))
    if task.kind == "classification":
        width = max(len(a) for a in task.answers)
        print(f"\n{'answer'.ljust(width)}  verbalizer{' ' * 14}" + "".join(f"{s:>11}" for s in SPLITS))
        for i, answer in enumerate(task.answers):
            counts = "".join(f"{info['class_counts'][s][answer]:>11}" for s in SPLITS)
            print(f"{answer.ljust(width)}  {task.verbalizers[i]!r:<24}{counts}")
        print(f"majority-class rate (test): {info['majority_rate_test']:.4f}")
    print(f"\nexample {info['example']['id']} (gold: {info['example']['gold']}):")
    print("-" * 60)
    print(info["example"]["prompt"])
    print("-" * 60)


# ---- eval-zero-shot ----------------------------------------------------------------------------
@dataclass
class ZeroShotConfig(TaskOptions, RuntimeOptions):
    model: str = shared_field(ModelOptions, "receivers", default=DEFAULT_RECEIVER, one_value=True, aliases=["model"])
    split: str = field(default="test", metadata={"help": "split to evaluate", "choices": list(SPLITS)})
    calibration: str = field(
        default="both",
        metadata={"help": "none, contextual, or both from the same forward passes", "choices": ["none", "contextual", "both"]},
    )
    limit: int | None = field(default=None, metadata={"help": "evaluate only the first N examples of the split"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if self.calibration not in ("none", "contextual", "both"):
            raise ValueError(f"calibration must be none, contextual or both, got {self.calibration!r}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")

    def legacy_identity(self) -> dict[str, Any]:
        """`threads` (0: torch's default) was part of the run id before it became a runtime option."""
        return {"threads": self.threads or 0}


METHODS = {"none": "zero-shot", "contextual": "zero-shot-calibrated"}
"""The method each calibration is recorded as: the names `lw-baseline` gives the same scores."""


def run_zero_shot(config: ZeroShotConfig, argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Evaluate `config.model` zero-shot on `config.task`: one run per calibration (`both` scores once
    and records two runs, `zero-shot@MODEL` and `zero-shot-calibrated@MODEL`, with the metric names of
    `lw-baseline`'s runs). Prints and returns each run's metrics with its `run_dir` and `method`."""
    from lw_core.lm import FrozenLM
    from lw_core.runs import open_run
    from lw_core.seeding import seed_everything

    from lw_tasks.evaluate import evaluate, flat_metrics, result_from_scores, write_eval
    from lw_tasks.scoring import ContextualCalibration, calibrate_scores, zero_shot_scorer

    apply_threads(config)  # also when called from Python, not the command line
    task = config.load_task()
    if task.kind != "classification":
        raise LwError(f"eval-zero-shot scores answer sets; task {task.name!r} is generative (use GenerationScorer)")
    task.split(config.split)  # fail on an empty split before loading a model
    calibrations = ["none", "contextual"] if config.calibration == "both" else [config.calibration]
    # The model is part of the method label (as `lw-baseline zero-shot@MODEL` does), so the run table never
    # mixes two models' zero-shot scores under one method.
    model = Path(config.model).name if Path(config.model).is_dir() else config.model
    methods = {c: f"{METHODS[c]}@{model}" for c in calibrations}
    with contextlib.ExitStack() as stack:
        runs = {c: stack.enter_context(open_run(
            hashed_run_dir(config, method, task.name), config, name=f"{method} on {task.name}/{config.split}",
            task=task.name, method=method, seed=config.seed, device=config.device, dtype=config.dtype,
            argv=list(argv) if argv is not None else None)) for c, method in methods.items()}  # fmt: skip
        seed_everything(config.seed)
        start = time.perf_counter()
        lm = FrozenLM.load(config.model, dtype=config.dtype, device=config.device)
        load_seconds = time.perf_counter() - start
        scorer = zero_shot_scorer(lm, task, calibrate=False)  # calibrated below from the same scores
        raw = evaluate(scorer, task, config.split, batch_size=config.eval_batch_size, limit=config.limit,
                       progress=config.progress)  # fmt: skip
        results = {"none": raw}
        if "contextual" in calibrations:
            examples = task.split(config.split)[: config.limit] if config.limit else task.split(config.split)
            offset = ContextualCalibration(scorer).offset(task)
            calibrated = result_from_scores(task, config.split, examples, calibrate_scores(raw.scores, offset))
            calibrated.metrics["seconds"] = raw.metrics["seconds"]
            calibrated.metrics["calibration_offset"] = dict(zip(task.answers, offset.tolist(), strict=True))
            results["contextual"] = calibrated
        for calibration, run in runs.items():
            result = results[calibration]
            result.metrics.update(model=config.model, method=methods[calibration], calibration=calibration)
            paths = write_eval(result, run.dir, config.split)
            run.artifacts.update({p.stem: p.name for p in paths.values()})
            run.metrics.update(flat_metrics(result.metrics))
            run.metrics.update(load_seconds=round(load_seconds, 2), model=config.model, split=config.split,
                               seconds_per_example=round(raw.metrics["seconds"] / raw.metrics["n"], 4))
    summaries = [{"run_dir": str(run.dir), "method": methods[c], **run.metrics} for c, run in runs.items()]
    for summary in summaries:
        print(json.dumps(summary))
    return summaries


def cmd_eval_zero_shot(config: ZeroShotConfig) -> None:
    run_zero_shot(config)


COMMANDS = {
    "list": Command("list the registered tasks", ListConfig),
    "show": Command("split sizes, class balance and one rendered prompt of a task", ShowConfig),
    "eval-zero-shot": Command("a model's zero-shot score on a task (uncalibrated and calibrated), written as a run",
                              ZeroShotConfig),
}
HANDLERS = {"list": cmd_list, "show": cmd_show, "eval-zero-shot": cmd_eval_zero_shot}


@cli_errors
def main(argv: Sequence[str] | None = None) -> None:
    name, config = parse_command("lw-tasks", "List tasks, show one, and run a model's zero-shot evaluation.",
                                 COMMANDS, argv)
    HANDLERS[name](config)


if __name__ == "__main__":
    main()


__all__ = ["ZeroShotConfig", "describe", "main", "run_zero_shot", "task_options"]
