"""Bridge losses. Each returns a scalar tensor; the trainer logs every term separately."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from lw_core import Embedded, FrozenLM
from lw_tasks import apply_answer_rule, resolve_answer_rule
from lw_tasks.generative import teacher_forced_ce

__all__ = ["ANTI_COLLAPSE_FORMS", "answer_ce", "answer_logits", "anti_collapse", "distillation", "diversity",
           "teacher_forced_ce"]

ANTI_COLLAPSE_FORMS = ("cosine", "std")


def answer_logits(receiver: FrozenLM, inputs: Embedded, answer_ids: Sequence[Sequence[int]], rule: str = "first-token",
                  context: Embedded | None = None, normaliser: str = "vocab") -> torch.Tensor:
    """Scores over the answer set at the answer position, [B, A], under the answer rule the
    evaluator scores by (`lw_tasks.ANSWER_RULES`), for the receiver reading `context` (no gradient;
    `FrozenLM.last_hidden`) and then `inputs`.

    `first-token` (answers with distinct first tokens): the receiver's logits restricted to those first
    tokens; their softmax over the answer set is the evaluator's first-token log-probs renormalised, and
    it needs one LM-head row per answer, not the whole vocabulary (262k rows for Gemma). `full` and
    `distinct-prefix`: the summed log-probabilities of the answer tokens the rule scores
    (`lw_tasks.apply_answer_rule`), each normalised by `normaliser` (`FrozenLM.score_answers`)."""
    if resolve_answer_rule(rule, answer_ids) != "first-token":
        scored = apply_answer_rule(answer_ids, rule)
        return receiver.score_answers(receiver.join(context, inputs), scored, normaliser).logprobs
    last = receiver.last_hidden(inputs, context)
    rows = torch.tensor([a[0] for a in answer_ids], device=last.device)
    return receiver.logits(last, rows=rows).float()


def answer_ce(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the task's answer set."""
    return F.cross_entropy(scores, labels.to(scores.device))


def distillation(student_scores: torch.Tensor, teacher_logprobs: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    """KL(teacher ‖ student) over the answer set at temperature T (scaled by T², as in Hinton et al.):
    the teacher is the receiver's own answer distribution when it reads the text prompt."""
    t = temperature
    student = F.log_softmax(student_scores / t, dim=-1)
    teacher = F.log_softmax(teacher_logprobs.to(student.device) / t, dim=-1)
    return F.kl_div(student, teacher, log_target=True, reduction="batchmean") * t * t


def diversity(soft_tokens: torch.Tensor) -> torch.Tensor:
    """Soft-token diversity across a batch: 1 − mean cosine similarity between different examples'
    soft tokens at the same position. Near 0 means every input sends the same message (collapse).
    Computed as what it equals, the unbiased variance of the unit-normalised soft tokens across the batch
    summed over features, which stays exact in float32 near collapse (1 − cosine rounds to 0)."""
    b = soft_tokens.shape[0]
    if b < 2:
        return soft_tokens.new_ones(())
    units = F.normalize(soft_tokens.float(), dim=-1)  # [B, K, D]
    centred = units - units.mean(0, keepdim=True)
    return centred.pow(2).sum(-1).sum(0).mean() / (b - 1)


def anti_collapse(soft_tokens: torch.Tensor, floor: float = 0.1, form: str = "cosine") -> torch.Tensor:
    """Penalty when the soft-token diversity falls below `floor` (in diversity units, as logged).

    `cosine` hinges the diversity itself: 1 − mean cosine is quadratic in how far the messages differ,
    so its gradient vanishes as they become alike and it cannot pull a collapsed bridge back. `std`
    hinges its square root, the standard deviation of the unit-normalised soft tokens across the batch
    (VICReg's variance term, summed over features): zero at the same diversity, but its gradient stays
    of order one at collapse."""
    if form == "cosine":
        return F.relu(floor - diversity(soft_tokens))
    if form == "std":
        return F.relu(floor**0.5 - diversity(soft_tokens).clamp_min(1e-12).sqrt())
    raise ValueError(f"unknown anti-collapse form {form!r}; known: {', '.join(ANTI_COLLAPSE_FORMS)}")
