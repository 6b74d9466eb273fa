"""The bridge as a scorer: it answers the same question as every other method (scores over the
task's answers, or generated answers for generative tasks), so the shared evaluator scores it by the
same code."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from lw_core import Embedded, FrozenLM
from lw_tasks import Example, Task, apply_answer_rule, first_line

from lw_bridge.bridge import Bridge
from lw_bridge.inputs import EncoderInputs, pad_states
from lw_bridge.wire import WireFormat, quantize


class BridgeScorer:
    scores_are_logprobs = True

    def __init__(self, bridge: Bridge, inputs: EncoderInputs, receiver: FrozenLM, receiver_index: int = 0,
                 wire: WireFormat | None = None):
        self.bridge, self.inputs, self.receiver, self.receiver_index, self.wire = (
            bridge, inputs, receiver, receiver_index, wire)
        self._answer_ids: list[list[int]] | None = None
        self.last_soft_tokens: torch.Tensor | None = None
        self.prefilled_start = None  # the receiver's constant start, prefilled once (`split_input`)

    def answer_ids(self) -> list[list[int]]:
        if self._answer_ids is None:
            ids = [self.receiver.token_ids(v) for v in self.bridge.config.verbalizers]
            self._answer_ids = apply_answer_rule(ids, self.bridge.config.answer_rule)
        return self._answer_ids

    def messages(self, examples: Sequence[Example]) -> torch.Tensor:
        device = next(self.bridge.parameters()).device
        states, mask = pad_states(self.inputs.get(examples), device)
        message = self.bridge.message(states, mask)
        return quantize(message, self.wire) if self.wire else message

    @torch.no_grad()
    def score(self, task: Task, examples: Sequence[Example]) -> torch.Tensor:
        self.bridge.eval()
        return self.receiver.score_answers(self.prefix(examples), self.answer_ids()).logprobs.float().cpu()

    def prefix(self, examples: Sequence[Example]):
        """The receiver's input for these examples: anchors and BOS around the message's soft tokens."""
        return self.receiver_input(self.messages(examples), self.bridge.receiver_texts(examples))

    def receiver_input(self, messages: torch.Tensor, texts: Sequence[str] | None = None):
        """The receiver's input for messages [B, M, d_z] (as they came off the wire); `texts` only for a
        bridge whose receiver reads the text too (fusion)."""
        soft = self.bridge.soft_tokens(messages, self.receiver_index)
        self.last_soft_tokens = soft
        return self.bridge.receiver_inputs(self.receiver, soft, texts)

    def split_input(self, soft: torch.Tensor, texts: Sequence[str] | None = None) -> tuple[object | None, Embedded]:
        """The receiver's input for soft tokens [B, K, D] as the KV cache of its constant start (BOS and the
        anchor before the soft tokens: `FrozenLM.prefill_context`, run on the first call and reused by every
        later call and batch) and what it reads after that start; (None, the whole input) in fusion mode,
        whose start holds the text. For `FrozenLM.score_answers(rest, ..., context=start)`."""
        context, rest = self.bridge.receiver_parts(self.receiver, soft, texts)
        if self.bridge.config.receiver_reads_text or context is None:
            return None, self.receiver.join(context, rest)
        if self.prefilled_start is None:
            self.prefilled_start = self.receiver.prefill_context(Embedded(context.embeds[:1], context.mask[:1]))
        return self.prefilled_start, rest

    @torch.no_grad()
    def generate(self, task: Task, examples: Sequence[Example]) -> list[str]:
        self.bridge.eval()
        outputs = self.receiver.generate_from(self.prefix(examples), self.bridge.config.max_new_tokens)
        return [first_line(o) for o in outputs]
