"""Every baseline method; importing this package registers them all in `lw_baselines.common.METHODS`
(the zero-shot methods are lw-tasks' `lw_tasks.zero_shot`, which lw-train's reference row scores with:
`lw-baseline` offers them as they are registered there)."""

from lw_tasks.zero_shot import ZERO_SHOT_METHODS

from lw_baselines.common import METHODS
from lw_baselines.methods import (  # noqa: F401  (registration side effects)
    ensemble,
    few_shot,
    finetune,
    probe,
    prompt_tuning,
    relay,
    token_budget,
)

for _method in ZERO_SHOT_METHODS:
    METHODS.add(_method.name, _method)
