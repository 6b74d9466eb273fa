"""What every baseline shares: the baselines' registry and its `register` (the Method protocol, the model
pool, the runner, the common config and the budget view are lw-tasks': `lw_tasks.methods`,
`lw_tasks.runner`, `lw_tasks.method_config`)."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from lw_core.registry import Registry
from lw_tasks.method_config import TEST_SUBSET_SEED, BaselineConfig, SingleModelConfig, budget_view
from lw_tasks.methods import METHODS as ALL_METHODS
from lw_tasks.methods import Context, Method, Models, Outcome, resolve_model

__all__ = [  # the one protocol and the common config, re-exported
    "TEST_SUBSET_SEED", "BaselineConfig", "Context", "Method", "Models", "Outcome", "SingleModelConfig",
    "budget_view", "resolve_model",
]  # fmt: skip

METHODS: Registry[Method] = Registry("method")
"""The baselines (`lw-baseline METHOD`); lw-tasks' `METHODS` holds them and every other method."""

log = logging.getLogger("lw.baselines")


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


def register(method: Method) -> Method:
    """Register a baseline: into lw-tasks' `METHODS` (every method of the one runner) and into this
    package's `METHODS` (what `lw-baseline` offers), seeing the shared budget view."""
    if method.default_model is not None and not issubclass(method.config, SingleModelConfig):
        raise TypeError(f"single-model method {method.name} needs a config derived from SingleModelConfig")
    method = dataclasses.replace(method, view=method.view or budget_view)
    ALL_METHODS.add(method.name, method)
    return METHODS.add(method.name, method)


def method_label(method: Method, config: Any) -> str:
    """The method's name in records and tables (`lw_tasks.methods.single_model_label`)."""
    return method.label(method, config)


def count_trainable(parameters) -> int:
    return sum(p.numel() for p in parameters if p.requires_grad)
