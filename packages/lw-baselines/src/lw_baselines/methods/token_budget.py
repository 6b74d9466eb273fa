"""Token-budget text: the receiver reads the input cut to as many of its own tokens as the bridge sends
soft tokens (K), the fair-budget control: what K text tokens carry, against what K soft tokens carry.
The cutting rule is lw-tasks' (`lw_tasks.budget`), the one lw-train's control at the message's bytes uses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lw_core.lm import FrozenLM
from lw_tasks import Example, Task, ZeroShotScorer
from lw_tasks.budget import truncate_tokens

from lw_baselines.common import Context, Method, Outcome, SingleModelConfig, _help, register
from lw_baselines.scoring import MappedScorer, choose_calibration, require_text_template, with_text


@dataclass
class TokenBudgetConfig(SingleModelConfig):
    budget_tokens: int = field(default=8, metadata=_help("K: input tokens kept (the bridge's soft-token count)"))
    calibration: str = field(
        default="select", metadata=_help("raw, calibrated, or select (chosen on validation)",
                                         choices=["raw", "calibrated", "select"]),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.budget_tokens < 1:
            raise ValueError(f"budget_tokens must be >= 1, got {self.budget_tokens}")


def budget_rewrite(lm: FrozenLM, budget: int):
    def rewrite(_task: Task, examples: Sequence[Example]) -> list[Example]:
        return [with_text(e, truncate_tokens(lm, e.text, budget)) for e in examples]

    return rewrite


def run_token_budget(ctx: Context) -> Outcome:
    cfg: TokenBudgetConfig = ctx.config
    require_text_template(ctx.task, "token-budget")
    lm = ctx.lm
    raw = MappedScorer(ZeroShotScorer(lm), budget_rewrite(lm, cfg.budget_tokens))
    allowed = {"raw": (False,), "calibrated": (True,), "select": (False, True)}[cfg.calibration]
    scorer, val, calibrated = choose_calibration(raw, ctx.task, batch_size=cfg.eval_batch_size, progress=ctx.progress,
                                                 allowed=allowed)
    return Outcome(scorer=scorer, validation=val,
                   selected={"calibrated": calibrated, "budget_tokens": cfg.budget_tokens})


register(Method(
    "token-budget", TokenBudgetConfig, run_token_budget,
    "the receiver reads the input cut to K of its tokens (K = the bridge's soft tokens); calibration on validation",
    "the task prompt with the input's first K tokens only", deterministic=True,
))  # fmt: skip
