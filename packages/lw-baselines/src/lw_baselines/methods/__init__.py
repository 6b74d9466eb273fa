"""Every baseline method; importing this package registers them all in `lw_baselines.common.METHODS`."""

from lw_baselines.methods import (  # noqa: F401  (registration side effects)
    ensemble,
    few_shot,
    finetune,
    probe,
    prompt_tuning,
    relay,
    token_budget,
    zero_shot,
)
