"""The generative (QA) path every method that trains on or scores generated answers shares: the bridge
(lw-train) and the receiver-side baselines (`lw-baseline lora` on a QA task) train by the same target
and loss, and answer by the same greedy generation (`lw_tasks.GenerationScorer` / `FrozenLM.generate_from`,
stopped at EOS, the first line kept).

- `answer_line_ids`: an answer as a model reads it right after the prompt: after a space, then the end of
  the line (`ANSWER_END`), so the teacher-forced loss also teaches where the answer stops.
- `teacher_forced_ce`: the cross-entropy of the first `max_tokens` target tokens after a prefix (text
  embeddings, soft tokens or both), with first-token accuracy.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from lw_core import Embedded, FrozenLM

from lw_tasks.task import Example

ANSWER_END = "\n"
"""What ends a generated answer: the evaluator keeps the first line of what a receiver generates."""
ANSWER_TOKENS = 8
"""Default target tokens in the teacher-forced CE (the answer's end of line counted)."""
MAX_NEW_TOKENS = 16
"""Default greedy tokens generated per answer at evaluation."""


@dataclass
class GenerationFields:
    """Mixed into the configs of methods that answer generative (QA) tasks: they generate as the bridge
    does (greedy, stopped at EOS, the first line kept), as many tokens by default."""

    max_new_tokens: int = field(default=MAX_NEW_TOKENS, metadata={
        "help": "generative tasks: greedy tokens generated per answer (as lw-train's --max-new-tokens)",
        "identity": "when-set"})

    def check_generation(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


def answer_line_ids(lm: FrozenLM, answer: str) -> list[int]:
    """An answer as `lm` reads it after the prompt: after a space (like the verbalizers of classification
    tasks), then the end of the line; an empty answer is the line end alone."""
    answer = answer.strip()
    return (lm.token_ids(" " + answer) if answer else []) + lm.token_ids(ANSWER_END)


def reference_line_ids(lm: FrozenLM, examples: Sequence[Example]) -> list[list[int]]:
    """Each example's first reference as `lm` reads it (`answer_line_ids`): what is trained."""
    return [answer_line_ids(lm, e.references[0] if e.references else "") for e in examples]


def teacher_forced_ce(lm: FrozenLM, prefix: Embedded, targets: Sequence[Sequence[int]], max_tokens: int | None = None,
                      context: Embedded | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """CE of the first `max_tokens` target tokens after each row of `prefix` (`max_tokens=1` is the
    first-token CE), averaged over target tokens. `context`, when given, is the part of the input before
    `prefix` that nothing trainable changes: it runs once without gradients (`FrozenLM.hidden_after`).
    Returns (loss, first-token accuracy)."""
    targets = [list(t[:max_tokens]) if max_tokens else list(t) for t in targets]
    rows = []
    for i, target in enumerate(targets):
        n = int(prefix.lengths[i])
        rows.append([prefix.embeds[i, :n], torch.tensor(target, dtype=torch.long)])
    hidden = lm.hidden_after(lm.compose(rows), context)
    # Every example's target positions in one [N, H] batch: one pass of the vocabulary head, not one per example.
    rows_idx = torch.cat([torch.full((len(t),), i) for i, t in enumerate(targets)]).to(hidden.device)
    positions = torch.cat([torch.arange(len(t)) + int(prefix.lengths[i]) - 1
                           for i, t in enumerate(targets)]).to(hidden.device)
    logits = lm.logits(hidden[rows_idx, positions]).float()
    gold = torch.tensor([token for t in targets for token in t], device=hidden.device)
    firsts = torch.tensor([0, *itertools.accumulate(len(t) for t in targets[:-1])], device=hidden.device)
    first_correct = (logits[firsts].argmax(-1) == gold[firsts]).float()
    return F.cross_entropy(logits, gold, reduction="sum") / len(gold), first_correct.mean()


@torch.no_grad()
def first_token_accuracy(lm: FrozenLM, prefix_of: Callable[[Sequence[Any]], Embedded], items: Sequence[Any],
                         targets: Sequence[Sequence[int]], batch_size: int) -> float:
    """How often `lm`'s greedy first token after each item's prefix (`prefix_of(batch)`: text embeddings,
    soft tokens or both) is its target's first token, in batches of `batch_size`."""
    correct = 0.0
    for start in range(0, len(items), batch_size):
        prefix = prefix_of(items[start : start + batch_size])
        _, accuracy = teacher_forced_ce(lm, prefix, targets[start : start + batch_size], 1)
        correct += accuracy.item() * prefix.embeds.shape[0]
    return correct / max(1, len(items))


def text_first_token_accuracy(lm: FrozenLM, prompts: Sequence[str], targets: Sequence[Sequence[int]],
                              batch_size: int) -> float:
    """`first_token_accuracy` after each text prompt (the first-token accuracy the bridge reports after
    its soft prefix, here after the text)."""
    return first_token_accuracy(lm, lm.embed_texts, prompts, targets, batch_size)
