"""`lw-baseline`'s side of the one runner (`lw_tasks.runner`): method specs (`name@model`), their
configs and per-method options, the suite of several methods sharing loaded models, its summary table."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

from lw_core.config import build_config, coerce
from lw_core.errors import LwError, unknown_name
from lw_core.models import prepare_presets
from lw_core.run_dirs import resolve_runtime
from lw_registry.text_table import terminal_table
from lw_tasks import Task
from lw_tasks.runner import run_method as run_one

import lw_baselines.methods  # noqa: F401  (registers the methods)
from lw_baselines.common import (
    METHODS,
    BaselineConfig,
    Method,
    Models,
    method_label,
)

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


def run_method(
    spec: str | Method, config: BaselineConfig, *, task: Task | None = None, models: Models | None = None,
    output_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Run one baseline into its run directory through the one runner (`lw_tasks.runner.run_method`);
    returns the record's metrics (plus `method` and `run_dir`)."""
    method = parse_spec(spec)[0] if isinstance(spec, str) else spec
    return run_one(method, config, task=task, models=models, output_dir=output_dir)


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
    if task.kind == "generative":  # the suite runs what answers a QA task; asked alone, the others refuse
        skipped = [spec for spec, method, _ in configs if not method.generative]
        if skipped:
            log.info("task %s is generative (EM / F1): skipping %s, which score a finite answer set", task.name,
                     ", ".join(skipped))
        configs = [c for c in configs if c[1].generative]
        if not configs:
            raise LwError(f"task {task.name!r} is generative and none of the methods asked for answers it")
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
        acc, val = r.get("accuracy"), r.get("val_accuracy")
        acc_text = "–" if acc is None else f"{acc:.4f}" + (f" ± {r['accuracy_draw_std']:.4f}" if r.get("accuracy_draw_std") else "")
        if acc is None and r.get("f1") is not None:  # a generative task: F1 and EM of the generated answers
            acc_text, val = f"F1 {r['f1']:.4f} (EM {r['em']:.4f})", r.get("val_f1")
        rows.append([
            r["method"], acc_text, "–" if val is None else f"{val:.4f}",
            f"{r.get('trainable_params', 0):,}", f"{r.get('train_seconds', 0):.1f}",
            "–" if r.get("seconds_per_example") is None else f"{r['seconds_per_example']:.4f}",
            f"{r.get('wall_seconds', 0):.1f}", r["status"] if r["status"] == "completed" else f"FAILED: {r.get('error')}",
        ])  # fmt: skip
    return terminal_table(headers, rows)
