"""Zero-shot: the model reads the task's prompt (with the input text) and scores every answer."""

from __future__ import annotations

from dataclasses import dataclass

from lw_tasks import zero_shot_scorer

from lw_baselines.common import Context, Method, Outcome, SingleModelConfig, register


@dataclass
class ZeroShotConfig(SingleModelConfig):
    pass


def run_zero_shot(ctx: Context) -> Outcome:
    return Outcome(scorer=zero_shot_scorer(ctx.lm, ctx.task, calibrate=False), selected={"calibrated": False})


def run_zero_shot_calibrated(ctx: Context) -> Outcome:
    return Outcome(scorer=zero_shot_scorer(ctx.lm, ctx.task, calibrate=True), selected={"calibrated": True})


SEES = "the task prompt with the full (budget-truncated) input text"
register(Method(
    "zero-shot", ZeroShotConfig, run_zero_shot,
    "the model scores each answer's verbalizer after the task prompt; no calibration", SEES, deterministic=True,
))  # fmt: skip
register(Method(
    "zero-shot-calibrated", ZeroShotConfig, run_zero_shot_calibrated,
    "zero-shot with contextual calibration (content-free inputs through the same template)", SEES,
    deterministic=True,
))  # fmt: skip
