"""Run one method end to end into a run directory, exactly like `lw-train` does for the bridge:
resolved config, validation and test metrics + predictions (lw-tasks' evaluator), the choices made on
validation, timings, trainable parameter count, and the `run.json` record's flat metrics."""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from pathlib import Path
from typing import Any

from lw_core.config import build_config, coerce, config_argv
from lw_core.errors import LwError, unknown_name
from lw_core.models import cache_dir, prepare_presets, transformers_progress
from lw_core.run_dirs import completed_metrics, hashed_run_dir, resolve_runtime
from lw_core.runs import open_run
from lw_core.seeding import seed_everything
from lw_registry.text_table import terminal_table
from lw_tasks import EvalResult, Task, evaluate, write_eval
from lw_tasks.scoring import memo_seconds

import lw_baselines.methods  # noqa: F401  (registers the methods)
from lw_baselines.common import (
    METHODS,
    BaselineConfig,
    Context,
    Method,
    Models,
    budget_view,
    method_label,
    resolve_model,
)
from lw_baselines.resume import checkpoints_in

log = logging.getLogger("lw.baselines")

SUITE = (
    "zero-shot", "zero-shot@sender", "zero-shot-calibrated", "zero-shot-calibrated@sender", "token-budget",
    "text-relay-answer", "ensemble", "probe", "probe-best-layer", "few-shot", "text-relay", "prompt-tuning",
    "lora", "dora",
)  # fmt: skip
"""What `lw-baseline all` runs, cheapest first."""


def parse_spec(spec: str) -> tuple[Method, str | None]:
    """`name` or `name@model` (model: 'sender', 'receiver' or a model name) → (method, model)."""
    name, _, model = spec.partition("@")
    if name not in METHODS:
        raise unknown_name("method", name, [*METHODS.names(), "all"])
    method = METHODS.get(name)
    if model and method.default_model is None:
        raise LwError(f"method {name!r} uses both the sender and the receiver; '@{model}' does not apply")
    return method, model or None


def make_config(method: Method, values: dict[str, Any], model: str | None = None) -> Any:
    """The method's config from common values (unknown-to-this-method keys dropped) and an optional model."""
    names = {f.name for f in dataclasses.fields(method.config)}
    values = {k: v for k, v in values.items() if k in names}
    if model is not None:
        if values.get("model") not in (None, model):
            raise LwError(f"model given twice: '@{model}' and --model {values['model']}")
        values["model"] = model
    return build_config(method.config, values)


def _flat(result: EvalResult, prefix: str = "") -> dict[str, Any]:
    keep = ("accuracy", "macro_f1", "nll", "invalid_rate", "majority_rate", "n")
    return {f"{prefix}{k}": result.metrics.get(k) for k in keep}


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def run_method(
    spec: str | Method, config: BaselineConfig, *, task: Task | None = None, models: Models | None = None,
    output_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Run one method into its run directory; returns the record's metrics (plus `run_dir`)."""
    method = parse_spec(spec)[0] if isinstance(spec, str) else spec
    if not isinstance(config, method.config):
        raise LwError(f"method {method.name!r} takes a {method.config.__name__}, got {type(config).__name__}")
    label = method_label(method, config)
    full = task if task is not None else config.load_task()
    run_dir = Path(output_dir) if output_dir else hashed_run_dir(config, label, full.name)
    done = completed_metrics(run_dir, config)  # refuses a run dir of another config
    if done is not None:
        log.info("%s on %s (seed %d) is already done: %s", label, full.name, config.seed, run_dir)
        return {**done, "method": label, "run_dir": str(run_dir)}
    generator = seed_everything(config.seed)
    view = budget_view(full, config)
    device, dtype = resolve_runtime(config.device, config.dtype)
    models = models or Models(device, dtype)
    eval_kw = {"batch_size": config.eval_batch_size, "progress": config.progress}
    argv = config_argv(config, ["lw-baseline", method.name, "--task", config.task])
    cache_dir()  # a `$LW_CACHE` that is a file fails here, before the run dir is made
    with transformers_progress(config.progress), open_run(
            run_dir, config, name=f"lw-baseline {label} {full.name}", task=full.name, method=label, seed=config.seed,
            device=device, dtype=dtype, argv=argv) as run:
        sizes = [len(view.split(s)) for s in ("train", "validation", "test")]
        if method.deterministic:  # no training, no sampling: the train split is not read
            log.info("%s on %s (seed %d): trains nothing; validation %d, test %d examples", label, full.name,
                     config.seed, *sizes[1:])
        else:
            log.info("%s on %s (seed %d): train %d, validation %d, test %d examples", label, full.name,
                     config.seed, *sizes)
        ctx = Context(config=config, task=view, full_task=full, models=models, run=run, method=method,
                      model_name=resolve_model(method, config), generator=generator)
        if ctx.model_name is not None:
            models.get(ctx.model_name)  # loading time is not training time
        elif method.default_model is None:
            models.get(config.sender), models.get(config.receiver)
        start = time.perf_counter()
        with checkpoints_in(run.dir / "checkpoints"):  # trained methods resume there
            outcome = method.run(ctx)
        train_seconds = time.perf_counter() - start
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
            metrics |= {"majority_rate": tests[0].metrics.get("majority_rate"), "n": n_test, "draws": len(tests)}
            run.write_json("metrics_test.json", {
                "task": full.name, "split": "test", "draws": [t.metrics for t in tests],
                **{k: v for k, v in metrics.items() if not k.startswith("val_")},
            })  # fmt: skip
            run.write_json("metrics_validation.json", {"task": full.name, "split": "validation",
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
        run.metrics.update(metrics)
    log.info("%s: test accuracy %.4f (validation %.4f) → %s", label, metrics["accuracy"],
             metrics.get("val_accuracy") or float("nan"), run_dir)
    return {**metrics, "method": label, "run_dir": str(run_dir)}


def method_options(method: Method, options: list[str]) -> dict[str, Any]:
    """`field=value` (every method that has the field) or `method.field=value` overrides for one method."""
    fields = {f.name for f in dataclasses.fields(method.config)}
    out: dict[str, Any] = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep:
            raise LwError(f"option {option!r} is not field=value or method.field=value")
        scope, _, name = key.rpartition(".")
        name = name.replace("-", "_")
        if scope and scope not in METHODS:
            raise unknown_name("method", scope, METHODS.names())
        if scope and scope != method.name:
            continue
        if name not in fields:
            if scope:
                raise LwError(f"method {scope!r} has no option {name!r}; known: {', '.join(sorted(fields))}")
            continue
        out[name] = coerce(method.config, name, value)
    return out


def check_options(options: list[str]) -> None:
    """Every unscoped option must belong to some method."""
    known = {f.name for m in METHODS.names() for f in dataclasses.fields(METHODS.get(m).config)}
    for option in options:
        key = option.partition("=")[0]
        name = key.rpartition(".")[2].replace("-", "_")
        if "." not in key and name not in known:
            raise LwError(f"no method has an option {name!r}; known: {', '.join(sorted(known))}")


def run_suite(
    specs: list[str], values: dict[str, Any], *, task: Task | None = None, models: Models | None = None,
    output_dir: str | Path | None = None, options: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Run several methods (each its own run directory); a failing method is reported and skipped.
    `options` are `field=value` / `method.field=value` overrides of the methods' own fields."""
    options = list(options or [])
    check_options(options)
    parsed = [(spec, *parse_spec(spec)) for spec in specs]  # fail fast on an unknown name
    configs = [(spec, method, make_config(method, values | method_options(method, options), model))
               for spec, method, model in parsed]
    first = configs[0][2] if configs else None
    if first is None:
        raise LwError("no methods to run")
    task = task if task is not None else first.load_task()
    if models is None:
        prepare_presets([first.sender, first.receiver])  # a cold cache converts both at once
        models = Models(*resolve_runtime(first.device, first.dtype))
    results = []
    for spec, method, config in configs:
        label = method_label(method, config)
        target = Path(output_dir) / label if output_dir else None
        start = time.perf_counter()
        try:
            result = run_method(method, config, task=task, models=models, output_dir=target)
            result["status"] = "completed"
        except Exception as err:  # one method's failure must not lose the rest of the suite
            log.error("%s failed: %s", spec, err, exc_info=not isinstance(err, LwError))
            result = {"method": label, "status": "failed", "error": f"{type(err).__name__}: {err}"}
        result["wall_seconds"] = round(time.perf_counter() - start, 1)
        results.append(result)
    return results


def summary_table(results: list[dict[str, Any]]) -> str:
    headers = ["method", "accuracy", "val acc", "trainable", "train s", "s/example", "wall s", "status"]
    rows = []
    for r in results:
        acc = r.get("accuracy")
        acc_text = "–" if acc is None else f"{acc:.4f}" + (f" ± {r['accuracy_draw_std']:.4f}" if r.get("accuracy_draw_std") else "")
        rows.append([
            r["method"], acc_text, "–" if r.get("val_accuracy") is None else f"{r['val_accuracy']:.4f}",
            f"{r.get('trainable_params', 0):,}", f"{r.get('train_seconds', 0):.1f}",
            "–" if r.get("seconds_per_example") is None else f"{r['seconds_per_example']:.4f}",
            f"{r.get('wall_seconds', 0):.1f}", r["status"] if r["status"] == "completed" else f"FAILED: {r.get('error')}",
        ])  # fmt: skip
    return terminal_table(headers, rows)
