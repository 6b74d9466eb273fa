"""One run-directory policy for every command: `$LW_RUNS/<task>/<method>/seed<S>-<hash>`.

The hash covers everything that changes a run's result (not where it is written, nor whether
progress bars show), so the same command lands in the same directory: it resumes there, or is
recognised as done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

from lw_registry import RECORD_NAME
from lw_registry.files import runs_root

from lw_core.errors import LwError, not_a_folder
from lw_core.models import model_tag

CONFIG_NAME = "config.json"


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config's values as `config.json` holds them."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def config_hash(config: Any) -> str:
    """A stable hash of a config's resolved values (order-independent)."""
    payload = json.dumps(config_to_dict(config) if dataclasses.is_dataclass(config) else config, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _defaults(config: Any, names: Collection[str] | None = None) -> dict[str, Any]:
    """A config class's default values (of the fields `names`, or all) as `config.json` holds them."""
    out = {}
    for f in dataclasses.fields(config):
        if names is not None and f.name not in names:
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if default is not dataclasses.MISSING:
            out[f.name] = json.loads(json.dumps(default, default=str))
    return out


NOT_IDENTITY = ("output_dir", "progress", "threads")
"""Config fields that never change a result."""


def identity_hash(config: Any) -> str:
    """The hash of a config's result-changing values. A config whose run ids held a value before it left
    the identity (`threads` of `lw-tasks eval-zero-shot`, `lw-bench`) says so in `legacy_identity()`,
    so its existing run directories keep their names; a field added after run ids existed, whose default
    keeps the old behaviour, says `"identity": "when-set"` in its metadata and joins the hash only when set."""
    values = config_to_dict(config)
    for name in NOT_IDENTITY:
        values.pop(name, None)
    when_set = [f.name for f in dataclasses.fields(config) if f.metadata.get("identity") == "when-set"]
    for name, default in _defaults(config, when_set).items():
        if values.get(name) == default:
            values.pop(name)
    legacy = getattr(config, "legacy_identity", None)
    if legacy is not None:
        values.update(legacy())
    return config_hash(values)


def task_slug(task: str) -> str:
    """A task name as a folder name: a data file's stem, a registered task's name."""
    return Path(task).stem if Path(task).suffix else task


def method_label(name: str, model: str | None = None, default: str | None = None) -> str:
    """A method's name in records, run directories and tables: `name`, or `name@MODEL` (the model's
    tag) when it runs on a model other than its default one (`zero-shot@smollm2-135m`)."""
    return name if model is None or model == default else f"{name}@{model_tag(model)}"


def hashed_run_dir(config: Any, method: str, task: str | None = None) -> Path:
    """`config.output_dir` when given, else `$LW_RUNS/<task>/<method>/seed<S>-<identity hash>`."""
    if getattr(config, "output_dir", None):
        return Path(config.output_dir)
    slug = task_slug(task or config.task)
    return runs_root() / slug / method / f"seed{config.seed}-{identity_hash(config)}"


def config_differences(stored: dict[str, Any], config: Any) -> list[str]:
    """`name: A there, B here` for each result-changing value of `config` that differs from `stored` (a
    `config.json`); a field `stored` lacks (written before the field existed) counts as its default."""
    defaults, current = _defaults(config), config_to_dict(config)
    missing = object()
    out = []
    for name, value in current.items():
        before = stored.get(name, defaults.get(name, missing))
        if name not in NOT_IDENTITY and before != value:
            out.append(f"{name}: {'(none)' if before is missing else json.dumps(before)} there, {json.dumps(value)} here")
    return out


def check_same_config(run_dir: str | Path, config: Any) -> None:
    """Refuse (one line naming both values) a run directory whose `config.json` holds another config: a
    command must never resume, rewrite or report another run's results as its own."""
    path = Path(run_dir)
    blocked = not_a_folder(path)
    if blocked:
        raise LwError(f"cannot use run directory {path}: {blocked}")
    try:
        stored = json.loads((path / CONFIG_NAME).read_text())
    except FileNotFoundError:
        return
    except (OSError, ValueError) as err:
        raise LwError(f"cannot read {path / CONFIG_NAME} ({err}); use another --output-dir") from None
    if not isinstance(stored, dict):
        raise LwError(f"{path / CONFIG_NAME} does not hold a config; use another --output-dir")
    differences = config_differences(stored, config)
    if differences:
        shown = "; ".join(differences[:4]) + (f"; and {len(differences) - 4} more" if len(differences) > 4 else "")
        raise LwError(f"run directory {path} holds a run of another config ({shown}); "
                      "use another --output-dir, or the same options as that run")


def completed_metrics(run_dir: str | Path, config: Any = None) -> dict[str, Any] | None:
    """The metrics of a run directory whose record says it completed; None otherwise. With `config`, a
    directory of another config is refused (`check_same_config`)."""
    if config is not None:
        check_same_config(run_dir, config)
    path = Path(run_dir) / RECORD_NAME
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return dict(record.get("metrics") or {}) if record.get("status") == "completed" else None


def resolve_runtime(device: str, dtype: str) -> tuple[str, str]:
    """The device and dtype a run will really use ('auto' resolved), as the names records keep."""
    from lw_core.models import DTYPES, resolve_device, resolve_dtype

    resolved = resolve_device(device)
    names = {v: k for k, v in DTYPES.items()}
    return str(resolved), names[resolve_dtype(dtype, resolved)]


def hardware_name(device: str) -> str:
    """The accelerator's name for a CUDA device, else the CPU's model name."""
    import platform

    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def runtime_facts(device: str | None, dtype: str | None) -> dict[str, Any]:
    """What a run really ran on: device and dtype with 'auto' resolved, and the hardware's name."""
    try:
        resolved_device, resolved_dtype = resolve_runtime(device or "auto", dtype or "auto")
    except Exception:  # an unusable device is the run's error to report, not the record's
        return {"device": device, "dtype": dtype}
    return {"device": resolved_device, "dtype": resolved_dtype, "hardware": hardware_name(resolved_device)}


TRAIN_BUDGET_FIELDS = ("max_train_examples", "max_validation_examples", "steps", "batch_size", "lr")


def train_budget(config: Any) -> dict[str, Any]:
    """The config's training budget (the fields it has of `TRAIN_BUDGET_FIELDS`)."""
    return {name: getattr(config, name) for name in TRAIN_BUDGET_FIELDS if hasattr(config, name)}
