"""lw-core: frozen-LM wrapper, model presets, configs, seeding and run directories."""

from lw_core.errors import LwError, cli_errors
from lw_core.lm import AnswerScores, Embedded, FrozenLM
from lw_core.models import cache_dir, load_causal_lm, resolve_device, resolve_dtype
from lw_core.presets import PRESETS
from lw_core.registry import Registry
from lw_core.seeding import seed_everything

__all__ = [
    "PRESETS",
    "AnswerScores",
    "Embedded",
    "FrozenLM",
    "LwError",
    "Registry",
    "cache_dir",
    "cli_errors",
    "load_causal_lm",
    "resolve_device",
    "resolve_dtype",
    "seed_everything",
]
