"""Bridge losses. Each returns a scalar tensor; the trainer logs every term separately."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from lw_core import Embedded, FrozenLM
from lw_tasks import apply_answer_rule, resolve_answer_rule


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
    soft tokens at the same position. Near 0 means every input sends the same message (collapse)."""
    b = soft_tokens.shape[0]
    if b < 2:
        return soft_tokens.new_ones(())
    flat = F.normalize(soft_tokens.float(), dim=-1).transpose(0, 1)  # [K, B, D]
    sims = flat @ flat.transpose(1, 2)  # [K, B, B]
    off_diagonal = sims.sum(dim=(1, 2)) - sims.diagonal(dim1=1, dim2=2).sum(-1)
    return 1 - (off_diagonal / (b * (b - 1))).mean()


def anti_collapse(soft_tokens: torch.Tensor, floor: float = 0.1) -> torch.Tensor:
    """Penalty when the soft-token diversity falls below `floor`."""
    return F.relu(floor - diversity(soft_tokens))


def teacher_forced_ce(receiver: FrozenLM, prefix: Embedded, targets: Sequence[Sequence[int]], max_tokens: int | None = None,
                      context: Embedded | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Generative answers: CE of the first `max_tokens` reference tokens after the soft prefix
    (`max_tokens=1` is the first-token CE). `context`, when given, is the part of the input before
    `prefix` that nothing trainable changes: it runs once without gradients (`FrozenLM.hidden_after`).
    Returns (loss, first-token accuracy)."""
    targets = [list(t[:max_tokens]) if max_tokens else list(t) for t in targets]
    rows = []
    for i, target in enumerate(targets):
        n = int(prefix.lengths[i])
        rows.append([prefix.embeds[i, :n], torch.tensor(target, dtype=torch.long)])
    hidden = receiver.hidden_after(receiver.compose(rows), context)
    # Every example's answer positions in one [N, H] batch: one pass of the vocabulary head, not one per example.
    rows_idx = torch.cat([torch.full((len(t),), i) for i, t in enumerate(targets)]).to(hidden.device)
    positions = torch.cat([torch.arange(len(t)) + int(prefix.lengths[i]) - 1 for i, t in enumerate(targets)]).to(hidden.device)
    logits = receiver.logits(hidden[rows_idx, positions]).float()
    gold = torch.tensor([token for t in targets for token in t], device=hidden.device)
    firsts = torch.tensor([0, *itertools.accumulate(len(t) for t in targets[:-1])], device=hidden.device)
    first_correct = (logits[firsts].argmax(-1) == gold[firsts]).float()
    return F.cross_entropy(logits, gold, reduction="sum") / len(gold), first_correct.mean()
