"""The one method runner: run any registered `Method` (the bridge through `lw-train`, every baseline
through `lw-baseline`) end to end into its run directory: the completed-run check, the run record
(`lw_core.runs.open_run`), resume (trained methods checkpoint under `checkpoints/`), validation and test
metrics + predictions from the shared evaluator, the choices made on validation, timings, the trainable
parameter count and the record's flat metrics."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lw_core.config import config_argv
from lw_core.errors import LwError
from lw_core.models import cache_dir, transformers_progress
from lw_core.run_dirs import completed_metrics
from lw_core.runs import Run, open_run
from lw_core.seeding import seed_everything

from lw_tasks.evaluate import EvalResult, evaluate, write_eval
from lw_tasks.methods import Context, Method, Models, Outcome, check_task_kind, resolve_model
from lw_tasks.scoring import memo_seconds
from lw_tasks.task import Task

log = logging.getLogger("lw.runner")

CHECKPOINT_DIR: contextvars.ContextVar[Path | None] = contextvars.ContextVar("lw_checkpoints", default=None)


@contextlib.contextmanager
def checkpoints_in(directory: str | Path | None) -> Iterator[None]:
    """Within this block a trained method checkpoints into (and resumes from) `directory`: the runner
    opens it around every method's run, so a method takes no checkpoint argument."""
    token = CHECKPOINT_DIR.set(None if directory is None else Path(directory))
    try:
        yield
    finally:
        CHECKPOINT_DIR.reset(token)


def run_method(
    method: Method, config: Any, *, task: Task | None = None, models: Models | None = None,
    output_dir: str | Path | None = None, argv: list[str] | None = None, name: str | None = None,
) -> dict[str, Any]:
    """Run one method into its run directory; returns the record's metrics (plus `method`, `run_dir`),
    or {} on a process other than rank 0 of a multi-process run."""
    if not isinstance(config, method.config):
        raise LwError(f"method {method.name!r} takes a {method.config.__name__}, got {type(config).__name__}")
    label = method.label(method, config)
    full = task if task is not None else config.load_task()
    check_task_kind(method, full)  # before the run dir, before any model loads
    run_dir = Path(output_dir) if output_dir else method.run_dir(config, label, full.name)
    if method.skip_completed:
        done = completed_metrics(run_dir, config)  # refuses a run dir of another config
        if done is not None:
            log.info("%s on %s (seed %d) is already done: %s", label, full.name, config.seed, run_dir)
            return {**done, "method": label, "run_dir": str(run_dir)}
    runtime = method.runtime(config)
    generator = seed_everything(config.seed)
    view = method.view(full, config) if method.view is not None else full
    models = models or Models(runtime.device, runtime.dtype)
    cache_dir()  # a `$LW_CACHE` that is a file fails here, before the run dir is made
    with transformers_progress(config.progress), open_run(
            run_dir, config, name=name or f"{method.entry} {label} {full.name}", task=full.name, method=label,
            seed=config.seed, device=str(runtime.device), dtype=runtime.dtype, rank=runtime.rank,
            argv=argv if argv is not None else config_argv(config, [method.entry, method.name, "--task", config.task]),
    ) as run:
        ctx = Context(config=config, task=view, full_task=full, models=models, run=run, method=method,
                      model_name=resolve_model(method, config), generator=generator, run_dir=run_dir,
                      runtime=runtime)
        if method.preload:
            _log_sizes(method, label, view, config.seed)
            if ctx.model_name is not None:
                models.get(ctx.model_name)  # loading time is not training time
            elif method.default_model is None:
                models.get(config.sender), models.get(config.receiver)
        start = time.perf_counter()
        with checkpoints_in(run.dir / "checkpoints"):  # trained methods resume there
            outcome = method.run(ctx)
        if outcome is None:  # not rank 0: rank 0 records the run
            return {}
        train_seconds = time.perf_counter() - start
        metrics = outcome.extra if outcome.evaluated else _evaluate(outcome, config, run, view, train_seconds)
        run.metrics.update(metrics)
    if "accuracy" in metrics:
        log.info("%s: test accuracy %.4f (validation %.4f) → %s", label, metrics["accuracy"],
                 metrics.get("val_accuracy") or float("nan"), run_dir)
    elif metrics.get("f1") is not None:
        log.info("%s: test F1 %.4f, EM %.4f (validation F1 %.4f) → %s", label, metrics["f1"], metrics["em"],
                 metrics.get("val_f1") or float("nan"), run_dir)
    return {**metrics, "method": label, "run_dir": str(run_dir)}


def _log_sizes(method: Method, label: str, view: Task, seed: int) -> None:
    sizes = [len(view.split(s)) for s in ("train", "validation", "test")]
    if method.deterministic:  # no training, no sampling: the train split is not read
        log.info("%s on %s (seed %d): trains nothing; validation %d, test %d examples", label, view.name, seed,
                 *sizes[1:])
    else:
        log.info("%s on %s (seed %d): train %d, validation %d, test %d examples", label, view.name, seed, *sizes)


def _flat(result: EvalResult, prefix: str = "") -> dict[str, Any]:
    if "f1" in result.metrics:  # generative: EM / F1 (and first-token accuracy where a method measured it)
        keep = tuple(k for k in ("em", "f1", "first_token_accuracy", "invalid_rate", "n") if k in result.metrics)
    else:
        keep = ("accuracy", "macro_f1", "nll", "invalid_rate", "majority_rate", "n_answers", "n")
    return {f"{prefix}{k}": result.metrics.get(k) for k in keep}


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _evaluate(outcome: Outcome, config: Any, run: Run, view: Task, train_seconds: float) -> dict[str, Any]:
    """The outcome's scorer (or draws) on validation and test: files, the record's flat metrics."""
    eval_kw = {"batch_size": config.eval_batch_size, "progress": config.progress}
    draws = outcome.draws or [(outcome.scorer, outcome.validation)]
    tests, vals, eval_seconds = [], [], []
    for d, (scorer, validation) in enumerate(draws):
        if validation is None:
            validation = evaluate(scorer, view, "validation", **eval_kw)
        start, shared = time.perf_counter(), memo_seconds()
        test = evaluate(scorer, view, "test", **eval_kw)
        # prompt scores another method of this process computed count what they took to compute
        eval_seconds.append(time.perf_counter() - start + memo_seconds() - shared)
        suffix = f"_draw{d}" if outcome.draws else ""
        write_eval(validation, run.dir, f"validation{suffix}")
        write_eval(test, run.dir, f"test{suffix}")
        tests.append(test)
        vals.append(validation)
    n_test = len(view.split("test"))
    metrics: dict[str, Any] = {}
    if len(tests) == 1:
        metrics |= _flat(tests[0]) | _flat(vals[0], "val_")
    else:
        for key in ("accuracy", "macro_f1", "nll", "invalid_rate"):
            values = [t.metrics[key] for t in tests if t.metrics.get(key) is not None]
            if values:
                metrics[key], metrics[f"{key}_draw_std"] = _mean_std(values)
            val_values = [v.metrics[key] for v in vals if v.metrics.get(key) is not None]
            if val_values:
                metrics[f"val_{key}"] = statistics.fmean(val_values)
        metrics |= {"majority_rate": tests[0].metrics.get("majority_rate"), "n_answers": tests[0].metrics.get("n_answers"),
                    "n": n_test, "draws": len(tests)}
        run.write_json("metrics_test.json", {
            "task": view.name, "split": "test", "draws": [t.metrics for t in tests],
            **{k: v for k, v in metrics.items() if not k.startswith("val_")},
        })  # fmt: skip
        run.write_json("metrics_validation.json", {"task": view.name, "split": "validation",
                                                   "draws": [v.metrics for v in vals]})
    metrics |= {
        "trainable_params": outcome.trainable_params,
        "train_seconds": round(train_seconds, 2),
        "eval_seconds": round(statistics.fmean(eval_seconds), 2),
        "seconds_per_example": statistics.fmean(eval_seconds) / max(1, n_test),
        "train_examples": len(view.split("train")),
        "val_examples": vals[0].metrics.get("n"),
    }
    metrics |= outcome.extra
    if outcome.after_test is not None:
        metrics |= outcome.after_test(tests[-1])
    run.write_json("selected.json", outcome.selected)
    for split in ("validation", "test"):
        run.artifacts[f"metrics_{split}"] = f"metrics_{split}.json"
    return metrics
