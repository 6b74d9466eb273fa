"""lw-baselines: every non-bridge method, scored by lw-tasks' one evaluator, each run recorded like `lw-train`'s."""

from lw_baselines.common import METHODS, BaselineConfig, Method, Models, Outcome, SingleModelConfig
from lw_baselines.runner import SUITE, make_config, parse_spec, run_method, run_suite

__all__ = [
    "METHODS",
    "SUITE",
    "BaselineConfig",
    "Method",
    "Models",
    "Outcome",
    "SingleModelConfig",
    "make_config",
    "parse_spec",
    "run_method",
    "run_suite",
]
