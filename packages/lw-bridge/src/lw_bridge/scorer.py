"""The bridge as a scorer: it answers the same question as every other method (scores over the
task's answers, or generated answers for generative tasks), so the shared evaluator scores it by the
same code."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from lw_core import FrozenLM
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

    @torch.no_grad()
    def generate(self, task: Task, examples: Sequence[Example]) -> list[str]:
        self.bridge.eval()
        outputs = self.receiver.generate_from(self.prefix(examples), self.bridge.config.max_new_tokens)
        return [first_line(o) for o in outputs]
