"""Exact scoring of many multi-token answers at the cost of their distinct prefixes.

The answers' token sequences form a trie. The receiver's hidden state that predicts an answer's k-th token
depends only on the prefix and the answer's first k−1 tokens, so it is one hidden state per trie node,
shared by every answer below that node, and so is its full-vocabulary normaliser. All nodes of one
example continue its prefix's KV cache in one forward pass (tree attention: a node sees the prefix, its
ancestors and itself, at position prefix length + depth − 1), so the continuation costs the number of
distinct answer prefixes, not answers × longest answer, and the prefix's KV is never repeated per answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AnswerTrie:
    """The answers' proper prefixes (length ≥ 1) as trie nodes, parents before children.

    `tokens` [N]: each node's last token (what the node feeds the model); `depth` [N]: its prefix length;
    `sees` [N, N]: node i attends to node j (j is i or an ancestor of i); `node_of` [A, L]: the node whose
    hidden state predicts answer a's token k (−1 for k = 0, predicted by the prefix, and for padding);
    `tokens_of` [A, L] and `mask` [A, L]: the answers' tokens, right-padded.
    """

    tokens: torch.Tensor
    depth: torch.Tensor
    sees: torch.Tensor
    node_of: torch.Tensor
    tokens_of: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def build(cls, answers: Sequence[Sequence[int]], device: torch.device | str = "cpu") -> AnswerTrie:
        index: dict[tuple[int, ...], int] = {}
        for answer in answers:
            for k in range(1, len(answer)):
                index.setdefault(tuple(answer[:k]), len(index))
        nodes = list(index)
        sees = torch.zeros(len(nodes), len(nodes), dtype=torch.bool)
        for i, prefix in enumerate(nodes):
            for k in range(1, len(prefix) + 1):
                sees[i, index[prefix[:k]]] = True
        longest = max(len(a) for a in answers)
        node_of = torch.full((len(answers), longest), -1, dtype=torch.long)
        tokens_of = torch.zeros(len(answers), longest, dtype=torch.long)
        mask = torch.zeros(len(answers), longest, dtype=torch.long)
        for a, answer in enumerate(answers):
            tokens_of[a, : len(answer)] = torch.tensor(list(answer))
            mask[a, : len(answer)] = 1
            for k in range(1, len(answer)):
                node_of[a, k] = index[tuple(answer[:k])]
        return cls(
            tokens=torch.tensor([p[-1] for p in nodes], dtype=torch.long, device=device),
            depth=torch.tensor([len(p) for p in nodes], dtype=torch.long, device=device),
            sees=sees.to(device),
            node_of=node_of.to(device),
            tokens_of=tokens_of.to(device),
            mask=mask.to(device),
        )

    @property
    def num_nodes(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def max_depth(self) -> int:
        return int(self.depth.max()) if self.num_nodes else 0

    def attention_mask(self, past_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Additive 4-D mask [B, 1, N, P + N] for the nodes after a left-padded prefix whose mask is
        `past_mask` [B, P]: each node sees the prefix's real tokens, its ancestors and itself."""
        batch, n = past_mask.shape[0], self.num_nodes
        allowed = torch.cat([past_mask.bool()[:, None, :].expand(batch, n, -1),
                             self.sees[None].expand(batch, n, n)], dim=-1)
        blocked = torch.zeros(allowed.shape, dtype=dtype, device=past_mask.device)
        return blocked.masked_fill_(~allowed, torch.finfo(dtype).min)[:, None]
