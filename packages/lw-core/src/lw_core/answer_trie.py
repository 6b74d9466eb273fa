"""Scoring many multi-token answers exactly, at the cost of their distinct prefixes.

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
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from lw_core.lm import Embedded, FrozenLM

NORMALISERS = ("vocab", "answers")
"""How `score_answers` normalises an answer token: over the vocabulary (the log-prob every scorer uses) or
over the answers' next tokens at its trie node (a cheaper training loss)."""


TREE_ATTENTION = ("eager", "sdpa")
"""Attention implementations that apply a custom 4-D mask as given (flash attention ignores it)."""


@dataclass
class AnswerScores:
    """Log-probabilities of each answer continuation after each prefix.

    `token_logprobs` [B, A, L] holds per-token log-probs (0 where `token_mask` [A, L] is 0);
    `logprobs` [B, A] their sum; `first_logprobs` [B, A] the first token's alone.
    """

    token_logprobs: torch.Tensor
    token_mask: torch.Tensor

    @property
    def logprobs(self) -> torch.Tensor:
        return self.token_logprobs.sum(dim=-1)

    @property
    def first_logprobs(self) -> torch.Tensor:
        return self.token_logprobs[..., 0]

    def mean_logprobs(self) -> torch.Tensor:
        return self.logprobs / self.token_mask.sum(dim=-1).clamp(min=1)


def proper_prefixes(answers: Sequence[Sequence[int]]) -> dict[tuple[int, ...], int]:
    """The answers' distinct proper prefixes (length ≥ 1), parents before children, each with its index:
    the trie's nodes, one continuation position each when an example is scored."""
    index: dict[tuple[int, ...], int] = {}
    for answer in answers:
        for k in range(1, len(answer)):
            index.setdefault(tuple(answer[:k]), len(index))
    return index


@dataclass(frozen=True)
class AnswerTrie:
    """The answers' proper prefixes (length ≥ 1) as trie nodes, parents before children.

    `tokens` [N]: each node's last token (what the node feeds the model); `depth` [N]: its prefix length;
    `sees` [N, N]: node i attends to node j (j is i or an ancestor of i); `node_of` [A, L]: the node whose
    hidden state predicts answer a's token k (−1 for k = 0, predicted by the prefix, and for padding);
    `tokens_of` [A, L] and `mask` [A, L]: the answers' tokens, right-padded; `children` [N + 1, C] and
    `children_mask`: each node's distinct next tokens (row N: the answers' distinct first tokens).
    """

    tokens: torch.Tensor
    depth: torch.Tensor
    sees: torch.Tensor
    node_of: torch.Tensor
    tokens_of: torch.Tensor
    mask: torch.Tensor
    children: torch.Tensor
    children_mask: torch.Tensor

    @classmethod
    def build(cls, answers: Sequence[Sequence[int]], device: torch.device | str = "cpu") -> AnswerTrie:
        index = proper_prefixes(answers)
        nodes = list(index)
        sees = torch.zeros(len(nodes), len(nodes), dtype=torch.bool)
        for i, prefix in enumerate(nodes):
            for k in range(1, len(prefix) + 1):
                sees[i, index[prefix[:k]]] = True
        next_tokens: list[dict[int, None]] = [{} for _ in range(len(nodes) + 1)]
        for answer in answers:
            next_tokens[-1][answer[0]] = None
            for k in range(1, len(answer)):
                next_tokens[index[tuple(answer[:k])]][answer[k]] = None
        width = max(len(n) for n in next_tokens)
        children = torch.zeros(len(nodes) + 1, width, dtype=torch.long)
        children_mask = torch.zeros(len(nodes) + 1, width, dtype=torch.bool)
        for i, tokens in enumerate(next_tokens):
            children[i, : len(tokens)] = torch.tensor(list(tokens), dtype=torch.long)
            children_mask[i, : len(tokens)] = True
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
            children=children.to(device),
            children_mask=children_mask.to(device),
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


def trie_hidden(lm: FrozenLM, left: Embedded, out, lengths: torch.Tensor, trie: AnswerTrie) -> torch.Tensor:
    """Final hidden states [B, N, H] of the trie's nodes after `FrozenLM._prefill`'s output: one forward with
    tree attention; or, for a prefix that fills a sliding attention window (where one mask cannot say
    which keys each layer keeps) or an attention kernel that takes no 4-D mask, each answer's own path
    with the prefix's KV repeated per answer."""
    batch = left.mask.shape[0]
    if trie.num_nodes == 0:
        return out.last_hidden_state.new_zeros(batch, 0, lm.hidden_size)
    window = getattr(lm.config, "sliding_window", None) or 1 << 62
    if left.mask.shape[1] + trie.max_depth < window and lm.config._attn_implementation in TREE_ATTENTION:
        return lm.model.base_model(
            input_ids=trie.tokens[None].expand(batch, -1), position_ids=lengths[:, None] + trie.depth[None] - 1,
            attention_mask=trie.attention_mask(left.mask, lm.dtype), past_key_values=out.past_key_values,
            use_cache=True).last_hidden_state
    n_answers, width = trie.tokens_of.shape[0], trie.tokens_of.shape[1] - 1
    out.past_key_values.batch_repeat_interleave(n_answers)
    inputs = trie.tokens_of[:, :-1].repeat(batch, 1)  # [B*A, L-1], example-major
    hidden = lm._continue(out, left.mask.repeat_interleave(n_answers, 0),
                          lengths.repeat_interleave(n_answers), torch.ones_like(inputs), input_ids=inputs)
    where = torch.zeros(trie.num_nodes, dtype=torch.long, device=lm.device)
    for a, k in reversed((trie.node_of >= 0).nonzero().tolist()):  # the first answer through each node
        where[trie.node_of[a, k]] = a * width + k - 1
    return hidden.reshape(batch, n_answers * width, -1)[:, where]


def token_scores(lm: FrozenLM, states: torch.Tensor, first: torch.Tensor, normalisers: torch.Tensor,
                 trie: AnswerTrie) -> AnswerScores:
    """Answer-token log-probs from the trie nodes' states [B, N (+1), H] and their log-normalisers
    [B, N (+1)]: each token after the first read at its node; `first` [B, A]: the first tokens'."""
    needed = trie.node_of >= 0  # [A, L]: tokens after the first
    nodes, targets = trie.node_of[needed], trie.tokens_of[needed]
    weight, bias = lm._head_rows(targets)
    chosen = (states[:, nodes].float() * weight).sum(-1)  # [B, T]
    if bias is not None:
        chosen = chosen + bias
    token_logprobs = first.new_zeros(states.shape[0], *trie.mask.shape)
    token_logprobs[:, :, 0] = first
    token_logprobs[:, needed] = lm._softcap(chosen) - normalisers[:, nodes]
    return AnswerScores(token_logprobs * trie.mask, trie.mask)


def restricted_scores(lm: FrozenLM, last: torch.Tensor, hidden: torch.Tensor, trie: AnswerTrie) -> AnswerScores:
    """`FrozenLM.score_answers(normaliser="answers")`: each node's softmax over its next tokens in the trie
    (the prefix, state N, over the answers' first tokens)."""
    states = torch.cat([hidden, last[:, None]], 1)  # [B, N + 1, H]
    weight, bias = lm._head_rows(trie.children)  # [N + 1, C, H]
    logits = torch.einsum("bnh,nch->bnc", states.float(), weight)
    logits = lm._softcap(logits if bias is None else logits + bias).masked_fill(~trie.children_mask, float("-inf"))
    normalisers = torch.logsumexp(logits, -1)  # [B, N + 1]
    first = lm.logits(last, rows=trie.tokens_of[:, 0]) - normalisers[:, -1:]
    return token_scores(lm, states, first, normalisers, trie)
