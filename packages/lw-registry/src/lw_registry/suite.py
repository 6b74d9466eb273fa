"""Suites: several plans submitted in turn, and what the results report needs to know about them.

A suite file (TOML/YAML) lists plan files (paths relative to it), the report's tasks in order, the
headline metric of a task (default `accuracy`) and the plans whose runs make an ablation table
(plan name -> the param the table groups by):

    plans = ["bridge.toml", "../../packages/lw-baselines/plans/baselines.toml", "ablations.toml"]
    tasks = ["rt-sentiment", "20ng", "r8"]
    [metrics]
    r8 = "macro_f1"
    [ablations]
    bridge-ablations = "ablation"

A plain plan file is a suite of one plan (its tasks, accuracy everywhere, no ablations).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from lw_registry.plan import Plan, PlanError, expand_plan, read_plan_file
from lw_registry.record import RunRecord

SUITE_KEYS = ("description", "plans", "tasks", "metrics", "ablations")
DEFAULT_METRIC = "accuracy"


@dataclass
class Suite:
    path: Path | None
    plans: list[Plan]
    tasks: list[str]
    metrics: dict[str, str] = field(default_factory=dict)
    ablations: dict[str, str] = field(default_factory=dict)

    def metric(self, task: str | None) -> str:
        """The headline metric of a task's table."""
        return self.metrics.get(task or "", DEFAULT_METRIC)


def is_suite(data: dict) -> bool:
    return "plans" in data


def _check_names(data: dict, key: str, kind: type) -> None:
    value = data.get(key)
    if value is None:
        return
    values = list(value.values()) if isinstance(value, dict) else value
    if not isinstance(value, kind) or not all(isinstance(v, str) and v for v in values):
        what = "a mapping of names to names" if kind is dict else "a list of names"
        raise PlanError(f"suite key {key!r} must be {what}, got {value!r}")


def load_suite(path: str | Path) -> Suite:
    """A suite file, or a plan file as a suite of one; PlanError (one line) on a bad or missing file."""
    path = Path(path)
    data = read_plan_file(path)
    if not is_suite(data):
        data.setdefault("name", path.stem)
        plan = expand_plan(data, path=path)
        return Suite(path, [plan], list(dict.fromkeys(r.task for r in plan.runs if r.task)))
    unknown = sorted(set(data) - set(SUITE_KEYS))
    if unknown:
        raise PlanError(f"unknown suite key(s) {', '.join(unknown)} in {path}; known: {', '.join(SUITE_KEYS)}")
    for key, kind in (("plans", list), ("tasks", list), ("metrics", dict), ("ablations", dict)):
        _check_names(data, key, kind)
    if not data["plans"]:
        raise PlanError(f"suite key 'plans' is empty in {path}")
    plans = []
    for entry in data["plans"]:
        plan_path = path.parent / entry
        plan_data = read_plan_file(plan_path)
        if is_suite(plan_data):
            raise PlanError(f"{plan_path} is a suite; a suite lists plan files")
        plan_data.setdefault("name", plan_path.stem)
        plans.append(expand_plan(plan_data, path=plan_path))
    names = [p.name for p in plans]
    stray = [n for n in data.get("ablations") or {} if n not in names]
    if stray:
        raise PlanError(f"suite key 'ablations' names plan(s) {', '.join(stray)} not in 'plans' ({', '.join(names)})")
    tasks = data.get("tasks") or list(dict.fromkeys(r.task for p in plans for r in p.runs if r.task))
    return Suite(path, plans, tasks, dict(data.get("metrics") or {}), dict(data.get("ablations") or {}))


def plan_paths(path: str | Path) -> list[Path]:
    """The plan files `submit` runs in turn: a suite's plans, or the plan file itself."""
    suite = load_suite(path)
    return [p.path or Path(path) for p in suite.plans]


def missing_runs(suite: Suite, records: Iterable[RunRecord]) -> list[tuple[Plan, list[str]]]:
    """Per plan, the names of its runs without a completed record (by plan hash, in any plan)."""
    done = {r.plan_hash for r in records if r.status == "completed" and r.plan_hash}
    return [(plan, [run.name for run in plan.runs if run.plan_hash not in done]) for plan in suite.plans]
