"""The zero-shot methods: the model reads the task's prompt (with the input text) and scores every answer
(`zero-shot`), contextually calibrated or not (`zero-shot-calibrated`). They are registered here, beside
the Method registry, because the bridge's reference row is one of them: `lw-train` scores the receiver
through `zero-shot-calibrated` (`reference_scorer`) and lw-bridge does not depend on lw-baselines;
`lw-baseline zero-shot[-calibrated][@MODEL]` offers the same methods."""

from __future__ import annotations

from dataclasses import dataclass

from lw_core.lm import FrozenLM

from lw_tasks.generative import GenerationFields
from lw_tasks.method_config import SingleModelConfig, budget_view
from lw_tasks.methods import METHODS, Context, Method, Models, Outcome
from lw_tasks.scoring import GenerationScorer, ZeroShotScorer, zero_shot_scorer
from lw_tasks.task import Task


@dataclass
class ZeroShotConfig(SingleModelConfig, GenerationFields):
    """On a generative task the model answers greedily, `max_new_tokens` tokens (the bridge's default)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_generation()


def _outcome(ctx: Context, calibrate: bool) -> Outcome:
    """The zero-shot scorer of `ctx.lm` on `ctx.task`. A config that names `max_new_tokens` (lw-train's)
    sets how many tokens it generates on a generative task; `zero_shot_scorer`'s default otherwise."""
    extra = {"max_new_tokens": ctx.config.max_new_tokens} if hasattr(ctx.config, "max_new_tokens") else {}
    scorer = zero_shot_scorer(ctx.lm, ctx.task, calibrate=calibrate, **extra)
    return Outcome(scorer=scorer, selected={"calibrated": calibrate})


def run_zero_shot(ctx: Context) -> Outcome:
    return _outcome(ctx, calibrate=False)


def run_zero_shot_calibrated(ctx: Context) -> Outcome:
    return _outcome(ctx, calibrate=True)


SEES = "the task prompt with the full (budget-truncated) input text"
ZERO_SHOT = METHODS.add("zero-shot", Method(
    "zero-shot", ZeroShotConfig, run_zero_shot,
    "the model scores each answer's verbalizer after the task prompt; no calibration", SEES, deterministic=True,
    view=budget_view, generative=True,
))  # fmt: skip
ZERO_SHOT_CALIBRATED = METHODS.add("zero-shot-calibrated", Method(
    "zero-shot-calibrated", ZeroShotConfig, run_zero_shot_calibrated,
    "zero-shot with contextual calibration (content-free inputs through the same template)", SEES,
    deterministic=True, view=budget_view, generative=True,
))  # fmt: skip
ZERO_SHOT_METHODS = (ZERO_SHOT, ZERO_SHOT_CALIBRATED)


def reference_scorer(lm: FrozenLM, task: Task, config: object) -> ZeroShotScorer | GenerationScorer:
    """`zero-shot-calibrated`'s scorer of `lm` on the whole of `task` (no budget view: a generative task
    is answered greedily): the text-prompt reference a trained method reports beside its own score.
    `config` is the caller's (its `max_new_tokens`, if any, applies)."""
    ctx = Context(config=config, task=task, full_task=task, models=Models(preloaded={lm.name: lm}), run=None,
                  method=ZERO_SHOT_CALIBRATED, model_name=lm.name)
    return ZERO_SHOT_CALIBRATED.run(ctx).scorer
