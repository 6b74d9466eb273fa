"""Plans: a grid of commands over tasks × methods × seeds × parameters, expanded into runs.

A plan file (YAML or TOML):

    name: demo                       # runs go under $LW_RUNS/<name>/
    command: "lw-baseline {method} --task {task} --seed {seed} --output-dir {run_dir}"
    tasks: [sst2, agnews]
    methods: [zero-shot, lora]       # `command` may also be a mapping method -> command
    seeds: [0, 1, 2]
    params: {k: [8, 16]}             # optional grid; each value is used as {k} in the command
    resume: "--resume"               # optional: args appended when a run is tried again
    max_attempts: 3                  # retry limit for --rerun-failed / submit
    concurrency: 2                   # local backend: runs at once
    timeout: 3600                    # local backend: seconds per run
    slurm: {profile: ops/slurm/profiles/example.toml, time: "02:00:00"}

The command is split into arguments like a shell would (`shlex`), then `{run_dir}`, `{task}`,
`{method}`, `{seed}`, `{plan}`, `{python}` and each param are substituted inside each argument,
so a value with spaces stays one argument and nothing is ever interpreted by a shell. `{{`/`}}`
give literal braces. A run's identity is the hash of its expanded command (with `{run_dir}`
unexpanded) and params: the same run in any plan is the same run, and a completed one is never
run twice.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lw_registry.files import read_mapping

PLAN_KEYS = {
    "name": "plan name; runs go under $LW_RUNS/<name>/",
    "command": "command template (string, or mapping method -> string)",
    "tasks": "list of task names ({task})",
    "methods": "list of method names ({method})",
    "seeds": "list of integer seeds ({seed})",
    "params": "mapping name -> list of values, expanded as a grid ({name})",
    "resume": "args appended when a run is tried again",
    "max_attempts": "retry limit",
    "concurrency": "local backend: runs at once",
    "timeout": "local backend: seconds per run",
    "env": "mapping of environment variables for every run",
    "slurm": "SLURM options (profile, account, partition, time, gpus, mem, ...)",
    "description": "free text",
}
BUILTIN_FIELDS = ("run_dir", "task", "method", "seed", "plan", "python")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


class PlanError(ValueError):
    """A plan that cannot be used; the message is one line naming the bad value."""


@dataclass(frozen=True)
class PlannedRun:
    plan: str
    task: str | None
    method: str | None
    seed: int | None
    params: dict[str, Any]
    argv_template: list[str]  # placeholders substituted except {run_dir}
    resume_template: list[str]
    plan_hash: str
    name: str
    slug: str
    env: dict[str, str] = field(default_factory=dict)

    def argv(self, run_dir: str | Path) -> list[str]:
        return [a.replace("\0RUN_DIR\0", str(run_dir)) for a in self.argv_template]

    def resume_args(self, run_dir: str | Path) -> list[str]:
        return [a.replace("\0RUN_DIR\0", str(run_dir)) for a in self.resume_template]


@dataclass
class Plan:
    name: str
    path: Path | None
    runs: list[PlannedRun]
    max_attempts: int = 3
    concurrency: int = 1
    timeout: float | None = None
    slurm: dict[str, Any] = field(default_factory=dict)


def substitute(template: str, values: dict[str, Any], *, where: str = "command") -> str:
    """Replace `{name}` by `values[name]` (str()); `{{`/`}}` are literal braces; unknown names are errors."""

    def repl(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        key = match.group(1)
        if key in ("task", "method", "seed") and key not in values:
            raise PlanError(f"placeholder {{{key}}} in {where} needs a '{key}s' list in the plan")
        if key not in values:
            known = ", ".join(sorted(values))
            raise PlanError(f"unknown placeholder {{{key}}} in {where}; known: {known}")
        return str(values[key])

    return _PLACEHOLDER.sub(repl, template)


def plan_hash(argv_template: list[str], params: dict[str, Any], env: dict[str, str] | None = None) -> str:
    payload = json.dumps({"argv": argv_template, "params": params, "env": env or {}}, sort_keys=True,
                         default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _slug(*parts: Any, limit: int = 80) -> str:
    text = "-".join(str(p) for p in parts if p not in (None, ""))
    return _SLUG_UNSAFE.sub("_", text).strip("_")[:limit] or "run"


def run_slug(parts: tuple[Any, ...], digest: str, limit: int = 80) -> str:
    """A run dir name: the readable parts cut to fit, then the hash (never cut, so names stay distinct)."""
    return f"{_slug(*parts, limit=limit - len(digest) - 1).rstrip('_-')}-{digest}"


def _list(data: dict[str, Any], key: str, kind: type | tuple[type, ...], default: list[Any]) -> list[Any]:
    if key not in data:
        return default
    value = data[key]
    if not isinstance(value, list) or not value:
        raise PlanError(f"plan key {key!r} must be a non-empty list, got {value!r}")
    for item in value:
        if not isinstance(item, kind) or isinstance(item, bool):
            raise PlanError(f"plan key {key!r}: bad item {item!r}")
    if len(set(map(str, value))) != len(value):
        raise PlanError(f"plan key {key!r} has duplicates: {value!r}")
    return value


def read_plan_file(path: str | Path) -> dict[str, Any]:
    """The mapping a plan file (.yaml/.yml/.toml/.json) holds; PlanError (one line) when it cannot be read."""
    return read_mapping(path, what="plan file", error=PlanError)


def load_plan(path: str | Path) -> Plan:
    path = Path(path)
    data = read_plan_file(path)
    data.setdefault("name", path.stem)
    return expand_plan(data, path=path)


def expand_plan(data: dict[str, Any], *, path: Path | None = None) -> Plan:
    """Validate a plan mapping and expand its grid into runs (deduplicated by plan hash)."""
    unknown = sorted(set(data) - set(PLAN_KEYS))
    if unknown:
        raise PlanError(f"unknown plan key(s) {', '.join(unknown)}; known: {', '.join(PLAN_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not name or _slug(name) != name:
        raise PlanError(f"plan 'name' must be a simple name (letters, digits, . _ = + -), got {name!r}")
    command = data.get("command")
    tasks = _list(data, "tasks", str, [None])
    methods = _list(data, "methods", str, [None])
    seeds = _list(data, "seeds", int, [None])
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise PlanError(f"plan key 'params' must be a mapping name -> list of values, got {params!r}")
    for key, values in params.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(key)) or key in BUILTIN_FIELDS:
            raise PlanError(f"bad param name {key!r} (identifier, not one of {', '.join(BUILTIN_FIELDS)})")
        if not isinstance(values, list):
            params[key] = [values]
    if isinstance(command, dict):
        missing = [m for m in methods if m not in command]
        if None in methods or missing:
            raise PlanError(f"command mapping has no entry for method(s) {missing or ['(none given)']}; "
                            f"it has: {', '.join(map(str, command))}")
        templates = {m: command[m] for m in methods}
    elif isinstance(command, str) and command.strip():
        templates = dict.fromkeys(methods, command)
    else:
        raise PlanError("plan key 'command' is required: a command string, or a mapping method -> command")
    resume = data.get("resume") or ""
    env = data.get("env") or {}
    if not isinstance(resume, str) or not isinstance(env, dict):
        raise PlanError("plan key 'resume' must be a string and 'env' a mapping")
    env = {str(k): str(v) for k, v in env.items()}
    slurm = data.get("slurm") or {}
    if not isinstance(slurm, dict):
        raise PlanError(f"plan key 'slurm' must be a mapping, got {slurm!r}")
    try:
        max_attempts = int(data.get("max_attempts", 3))
        concurrency = int(data.get("concurrency", 1))
        timeout = float(data["timeout"]) if data.get("timeout") is not None else None
    except (TypeError, ValueError):
        raise PlanError("plan keys 'max_attempts', 'concurrency' must be integers, 'timeout' seconds") from None
    if max_attempts < 1 or concurrency < 1:
        raise PlanError("plan keys 'max_attempts' and 'concurrency' must be >= 1")

    runs: list[PlannedRun] = []
    seen: set[str] = set()
    by_command: dict[str, str] = {}  # expanded command -> the run that has it
    keys = list(params)
    for task, method, seed, combo in itertools.product(tasks, methods, seeds,
                                                       itertools.product(*(params[k] for k in keys))):
        values = dict(zip(keys, combo, strict=True))
        labels = {"task": task, "method": method, "seed": seed}
        subst = {k: v for k, v in labels.items() if v is not None} | {
            "plan": name, "python": sys.executable, "run_dir": "\0RUN_DIR\0", **values}
        template = templates[method]
        try:
            split = shlex.split(template)
            resume_split = shlex.split(resume)
        except ValueError as exc:
            raise PlanError(f"cannot split command {template!r}: {exc}") from None
        argv = [substitute(a, subst) for a in split]
        resume_argv = [substitute(a, subst, where="resume") for a in resume_split]
        # Hash what identifies the run, not where this machine's python lives.
        hashed = [substitute(a, subst | {"python": "{python}"}) for a in split]
        h = plan_hash(hashed, {"task": task, "method": method, "seed": seed, **values}, env)
        if h in seen:
            continue
        seen.add(h)
        label = ",".join(f"{k}={values[k]}" for k in keys)
        run_name = "/".join(str(p) for p in (name, task, method, None if seed is None else f"seed{seed}",
                                              label or None) if p is not None)
        same = by_command.setdefault(json.dumps([hashed, env], sort_keys=True), run_name)
        if same != run_name:
            shown = describe([a.replace("\0RUN_DIR\0", "{run_dir}") for a in hashed])
            raise PlanError(f"plan {name}: runs {same} and {run_name} expand to the same command ({shown}); "
                            "the same command is the same run: use what tells them apart ({method}, {seed}, "
                            "a param) in the command")
        runs.append(PlannedRun(
            plan=name, task=task, method=method, seed=seed, params=values, argv_template=argv,
            resume_template=resume_argv, plan_hash=h, name=run_name,
            slug=run_slug((task, method, None if seed is None else f"s{seed}", label), h[:8]), env=env,
        ))
    return Plan(name=name, path=path, runs=runs, max_attempts=max_attempts, concurrency=concurrency,
                timeout=timeout, slurm=slurm)


def describe(argv: list[str]) -> str:
    """A copy-pasteable shell form of an argv."""
    return shlex.join(argv)
