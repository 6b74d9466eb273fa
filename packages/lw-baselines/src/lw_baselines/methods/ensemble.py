"""Ensemble: joint rescoring of the sender's and the receiver's zero-shot answer scores.

score = w · log p_sender(answer) + (1 − w) · log p_receiver(answer), each renormalised over the
answer set and calibrated or not; w (on a grid) and both calibrations are chosen on validation.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from lw_tasks import (
    ContextualCalibration,
    EvalResult,
    Example,
    Task,
    ZeroShotScorer,
    evaluate,
    result_from_scores,
)

from lw_baselines.common import BaselineConfig, Context, Method, Outcome, _help, register
from lw_baselines.scoring import better


@dataclass
class EnsembleConfig(BaselineConfig):
    weights: list[float] = field(
        default_factory=lambda: [round(0.1 * i, 1) for i in range(11)],
        metadata=_help("candidate sender weights w in [0, 1] (chosen on validation)"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.weights or any(not 0 <= w <= 1 for w in self.weights):
            raise ValueError(f"weights must be in [0, 1], got {self.weights}")


def combine(sender: torch.Tensor, receiver: torch.Tensor, weight: float) -> torch.Tensor:
    return weight * torch.log_softmax(sender.float(), -1) + (1 - weight) * torch.log_softmax(receiver.float(), -1)


class EnsembleScorer:
    scores_are_logprobs = True

    def __init__(self, sender: ZeroShotScorer, receiver: ZeroShotScorer, weight: float):
        self.sender, self.receiver, self.weight = sender, receiver, weight

    def score(self, task: Task, examples: Sequence[Example]) -> torch.Tensor:
        s = self.sender.score(task, examples) if self.weight > 0 else torch.zeros(len(examples), len(task.answers))
        r = self.receiver.score(task, examples) if self.weight < 1 else torch.zeros(len(examples), len(task.answers))
        return combine(s, r, self.weight)


def run_ensemble(ctx: Context) -> Outcome:
    cfg: EnsembleConfig = ctx.config
    task, examples = ctx.task, ctx.task.split("validation")
    raw, offsets = {}, {}
    for role, lm in (("sender", ctx.sender), ("receiver", ctx.receiver)):
        raw[role] = evaluate(ZeroShotScorer(lm), task, "validation", batch_size=cfg.eval_batch_size,
                             progress=ctx.progress).scores
        offsets[role] = ContextualCalibration(ZeroShotScorer(lm)).offset(task)

    def scores(role: str, calibrated: bool) -> torch.Tensor:
        return raw[role] - offsets[role] if calibrated else raw[role]

    best: tuple[float, bool, bool, EvalResult] | None = None
    tried = []
    for weight, s_cal, r_cal in itertools.product(sorted(cfg.weights), (False, True), (False, True)):
        val = result_from_scores(task, "validation", examples, combine(scores("sender", s_cal),
                                                                       scores("receiver", r_cal), weight))
        tried.append({"w": weight, "sender_calibrated": s_cal, "receiver_calibrated": r_cal,
                      "val_accuracy": val.metrics["accuracy"]})
        if best is None or better(val, best[3]):
            best = (weight, s_cal, r_cal, val)
    assert best is not None
    weight, s_cal, r_cal, val = best
    scorer = EnsembleScorer(ZeroShotScorer(ctx.sender, calibrate=s_cal), ZeroShotScorer(ctx.receiver, calibrate=r_cal),
                            weight)
    return Outcome(scorer=scorer, validation=val, extra={"sender_weight": weight},
                   selected={"sender_weight": weight, "sender_calibrated": s_cal, "receiver_calibrated": r_cal,
                             "tried": tried})


register(Method(
    "ensemble", EnsembleConfig, run_ensemble,
    "weighted sum of the sender's and receiver's zero-shot answer log-probs; weight and calibrations on validation",
    "both models read the task prompt with the full input text", default_model=None, deterministic=True,
))  # fmt: skip
