"""The bridge's training objective: answer CE by the answer rule (or the teacher-forced CE of
generative tasks), distillation, the anti-collapse term and the message head's CE, summed over receivers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from lw_core import FrozenLM

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
            ce, first_token_accuracy = teacher_forced_ce(receiver, receiver.join(context, inputs), references[r],
                                                         config.answer_tokens)
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
        if config.diversity_weight > 0:
            loss = loss + config.diversity_weight * anti_collapse(soft, config.diversity_floor)
        terms[f"diversity/{r}"] = diversity(soft.detach()).item()
    if head_logits is not None:
        head_ce = answer_ce(head_logits, labels)
        loss = loss + config.message_head_weight * head_ce
        terms["message_head_ce"] = head_ce.item()
    return loss, terms

