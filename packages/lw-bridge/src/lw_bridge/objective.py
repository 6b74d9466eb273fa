"""The bridge's training objective: answer CE by the answer rule (or the teacher-forced CE of
generative tasks), distillation, the anti-collapse term and the message head's CE, summed over receivers.
The anti-collapse term and the logged diversity are over the whole global batch, also when several
processes each hold a share of it (`lw_core.distributed.gather_rows`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from lw_core import FrozenLM
from lw_core.distributed import gather_rows

from lw_bridge.bridge import Bridge
from lw_bridge.config import TrainConfig
from lw_bridge.losses import (
    answer_ce,
    answer_logits,
    anti_collapse,
    distillation,
    diversity,
    teacher_forced_ce,
)


def bridge_loss(soft_per_receiver: list[torch.Tensor], bridge: Bridge, receivers: list[FrozenLM],
                answer_ids: list[list[list[int]]], labels: torch.Tensor | None, config: TrainConfig,
                teachers: list[torch.Tensor] | None, references: list[list[list[int]]] | None = None,
                head_logits: torch.Tensor | None = None, texts: Sequence[str] | None = None
                ) -> tuple[torch.Tensor, dict[str, float]]:
    """The training objective summed over receivers, and each term for the log. Classification: CE
    over the answer set (+ distillation); generative (`references`, per receiver and example): the
    teacher-forced CE of the first `answer_tokens` reference tokens, with first-token accuracy; plus the
    message head's answer CE when the bridge has one."""
    terms: dict[str, float] = {}
    loss = torch.zeros((), device=soft_per_receiver[0].device)
    for r, (receiver, soft) in enumerate(zip(receivers, soft_per_receiver, strict=True)):
        context, inputs = bridge.receiver_parts(receiver, soft, texts)
        if references is not None:
            ce, first_token_accuracy = teacher_forced_ce(receiver, inputs, references[r], config.answer_tokens,
                                                         context)
            terms[f"first_token_acc/{r}"] = first_token_accuracy.item()
        else:
            scores = answer_logits(receiver, inputs, answer_ids[r], config.answer_rule, context,
                                   config.answer_normaliser)
            ce = answer_ce(scores, labels)
        loss = loss + ce
        terms[f"ce/{r}"] = ce.item()
        if teachers is not None:
            kd = distillation(scores, teachers[r], config.kd_temperature)
            loss = loss + config.kd_weight * kd
            terms[f"kd/{r}"] = kd.item()
        # A statistic across examples: over the whole global batch when processes share it (DDP).
        batch_soft = gather_rows(soft if config.diversity_weight > 0 else soft.detach())
        if config.diversity_weight > 0:
            loss = loss + config.diversity_weight * anti_collapse(batch_soft, config.diversity_floor,
                                                                   config.anti_collapse)
        terms[f"diversity/{r}"] = diversity(batch_soft.detach()).item()
    if head_logits is not None:
        head_ce = answer_ce(head_logits, labels)
        loss = loss + config.message_head_weight * head_ce
        terms["message_head_ce"] = head_ce.item()
    return loss, terms

