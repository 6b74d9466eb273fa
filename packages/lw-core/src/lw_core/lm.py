"""FrozenLM: the one wrapper every method uses around a frozen causal LM.

All sequences are right-padded (scoring needs no position-id tricks). Embeddings are always those
the first decoder layer sees: `get_input_embeddings()(ids)`, which for Gemma includes its
sqrt(hidden) scale, so soft tokens and text tokens live in the same space for every family.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lw_core.answer_trie import (
    NORMALISERS,
    AnswerScores,
    AnswerTrie,
    restricted_scores,
    token_scores,
    trie_hidden,
)
from lw_core.errors import LwError
from lw_core.models import load_causal_lm

Segment = torch.Tensor
"""One piece of one example's input: a 1-D LongTensor of token ids or a 2-D [n, hidden] float tensor."""


@dataclass
class Embedded:
    """A right-padded batch of input embeddings: `embeds` [B, T, H] and `mask` [B, T] (1 = real)."""

    embeds: torch.Tensor
    mask: torch.Tensor

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.sum(dim=1)

    def left_padded(self) -> Embedded:
        """The same batch with padding moved to the left (sequences end at the last position)."""
        width = self.mask.shape[1]
        shift = width - self.lengths  # [B]
        index = (torch.arange(width, device=self.mask.device)[None, :] - shift[:, None]) % width
        embeds = self.embeds.gather(1, index[:, :, None].expand_as(self.embeds))
        return Embedded(embeds, self.mask.gather(1, index))


class _StopForward(Exception):
    """Raised by a forward hook to end a forward pass early."""


class FrozenLM(torch.nn.Module):
    """A frozen causal LM (no parameter requires grad, eval mode) that stays differentiable in its inputs."""

    def __init__(self, model, tokenizer, name: str = "model"):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.name = name
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "right"
        self._embedding_rms: float | None = None

    @classmethod
    def load(cls, name: str, *, dtype: str = "auto", device: str = "auto") -> FrozenLM:
        model, tokenizer = load_causal_lm(name, dtype=dtype, device=device)
        return cls(model, tokenizer, name=name)

    def train(self, mode: bool = True) -> FrozenLM:  # the wrapped model stays in eval mode
        super().train(mode)
        self.model.eval()
        return self

    # ---- shape facts -------------------------------------------------------------------------
    @property
    def config(self):
        return self.model.config

    @property
    def hidden_size(self) -> int:
        return self.model.get_input_embeddings().embedding_dim

    @property
    def vocab_size(self) -> int:
        return self.model.get_output_embeddings().weight.shape[0]

    @property
    def num_layers(self) -> int:
        return self.config.num_hidden_layers

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.get_input_embeddings().weight.dtype

    @property
    def bos_ids(self) -> list[int]:
        """The BOS the tokenizer itself puts before a text ([] for models that add none)."""
        probe = self.tokenizer("a")["input_ids"]
        bos = self.tokenizer.bos_token_id
        return [bos] if bos is not None and probe and probe[0] == bos else []

    # ---- tokens ------------------------------------------------------------------------------
    def token_ids(self, text: str) -> list[int]:
        """Token ids of a text fragment, without any special tokens (for answers and anchors)."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def tokenize(self, texts: Sequence[str], max_tokens: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded (input_ids, attention_mask) with the model's own BOS policy; each text truncated
        to its first `max_tokens` tokens (special tokens included)."""
        if isinstance(texts, str):
            raise LwError("tokenize takes a list of texts, not one string")
        enc = self.tokenizer(
            list(texts),
            padding=True,
            truncation=max_tokens is not None,
            max_length=max_tokens,
            return_tensors="pt",
        )
        return enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)

    # ---- embeddings --------------------------------------------------------------------------
    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings exactly as the first layer sees them (Gemma's scale included)."""
        return self.model.get_input_embeddings()(ids.to(self.device))

    def embedding_rms(self) -> float:
        """Mean per-token RMS of the input embeddings (as the first layer sees them) over the vocabulary."""
        if self._embedding_rms is None:
            total, count = 0.0, 0
            with torch.no_grad():
                for start in range(0, self.vocab_size, 8192):
                    ids = torch.arange(start, min(start + 8192, self.vocab_size), device=self.device)
                    rms = self.embed(ids).float().pow(2).mean(dim=-1).sqrt()
                    total, count = total + rms.sum().item(), count + rms.numel()
            self._embedding_rms = total / count
        return self._embedding_rms

    def embed_texts(self, texts: Sequence[str], max_tokens: int | None = None) -> Embedded:
        ids, mask = self.tokenize(texts, max_tokens)
        return Embedded(self.embed(ids), mask)

    def compose(self, examples: Sequence[Sequence[Segment]]) -> Embedded:
        """Concatenate each example's segments (token ids and/or soft-token embeddings) and right-pad."""
        rows = []
        for segments in examples:
            parts = [self.embed(s) if s.dtype in (torch.long, torch.int) else s.to(self.device, self.dtype) for s in segments]
            parts = [p for p in parts if p.shape[0] > 0]
            if not parts:
                raise LwError("cannot compose an empty input")
            rows.append(torch.cat(parts, dim=0))
        longest = max(r.shape[0] for r in rows)
        embeds = rows[0].new_zeros(len(rows), longest, self.hidden_size)
        mask = torch.zeros(len(rows), longest, dtype=torch.long, device=self.device)
        for i, row in enumerate(rows):
            embeds[i, : row.shape[0]] = row
            mask[i, : row.shape[0]] = 1
        return Embedded(embeds, mask)

    def join(self, context: Embedded | None, inputs: Embedded) -> Embedded:
        """Each example's context followed by its inputs, right-padded (`last_hidden`'s two parts as one)."""
        if context is None:
            return inputs
        return self.compose([[context.embeds[i, : int(n)], inputs.embeds[i, : int(m)]]
                             for i, (n, m) in enumerate(zip(context.lengths, inputs.lengths, strict=True))])

    # ---- forward -----------------------------------------------------------------------------
    def hidden_states(self, inputs: Embedded | Sequence[str], layer: int, max_tokens: int | None = None) -> Embedded:
        """Hidden states after decoder layer `layer` (0 = the embeddings, -1 = the last layer after the
        final norm), with the inputs' mask."""
        if not isinstance(inputs, Embedded):
            inputs = self.embed_texts(inputs, max_tokens)
        n = self.num_layers
        if not -(n + 1) <= layer <= n:
            raise LwError(f"layer {layer} out of range for {self.name} ({n} layers: -{n + 1}..{n})")
        index = layer % (n + 1)
        base = self.model.base_model
        if index == 0:
            return Embedded(inputs.embeds, inputs.mask)
        layers = getattr(base, "layers", None)
        if index == n or layers is None:
            out = base(inputs_embeds=inputs.embeds, attention_mask=inputs.mask, output_hidden_states=True, use_cache=False)
            return Embedded(out.hidden_states[index], inputs.mask)
        # Stop after decoder layer `index`: the layers above it would be computed for nothing.
        captured: list[torch.Tensor] = []

        def stop(_module, _args, output):
            captured.append(output[0] if isinstance(output, tuple) else output)
            raise _StopForward

        handle = layers[index - 1].register_forward_hook(stop)
        try:
            base(inputs_embeds=inputs.embeds, attention_mask=inputs.mask, use_cache=False)
        except _StopForward:
            pass
        finally:
            handle.remove()
        return Embedded(captured[0], inputs.mask)

    def last_hidden(self, inputs: Embedded, context: Embedded | None = None) -> torch.Tensor:
        """Final hidden state [B, H] at each example's last real position of `inputs`, read after
        `context` when given: the part of every example's input that nothing trainable changes (text
        before the soft tokens). The context runs once without gradients into a KV cache; only `inputs`
        is differentiated, so training through a frozen receiver costs what its trainable part costs.
        The same numbers as one forward over context + inputs."""
        rows = torch.arange(inputs.embeds.shape[0], device=inputs.embeds.device)
        return self.hidden_after(inputs, context)[rows, inputs.lengths - 1]

    def hidden_after(self, inputs: Embedded, context: Embedded | None = None) -> torch.Tensor:
        """Final hidden states [B, T, H] of every position of `inputs`, read after `context` as in
        `last_hidden` (the context prefilled once without gradients)."""
        if context is None:
            return self.model.base_model(inputs_embeds=inputs.embeds, attention_mask=inputs.mask,
                                         use_cache=False).last_hidden_state
        with torch.no_grad():
            left, prefilled = self._prefill(context, use_cache=True)
        return self._continue(prefilled, left.mask, context.lengths, inputs.mask, inputs_embeds=inputs.embeds)

    def _prefill(self, prefix: Embedded, use_cache: bool):
        """Run `prefix` left-padded, so that it ends where a continuation starts: with right padding, pad
        slots would count against a sliding-window cache (Gemma) and evict real tokens. Returns the
        left-padded prefix and the model's output (its KV cache when `use_cache`)."""
        left = prefix.left_padded()
        positions = (left.mask.cumsum(dim=1) - 1).clamp(min=0)
        out = self.model.base_model(inputs_embeds=left.embeds, attention_mask=left.mask, position_ids=positions,
                                    use_cache=use_cache)
        return left, out

    def _continue(self, out, past_mask: torch.Tensor, past_lengths: torch.Tensor, mask: torch.Tensor, **inputs):
        """Last hidden states of `inputs` (input_ids or inputs_embeds, right-padded by `mask`) read after
        `_prefill`'s output `out`, whose left-padded mask and real lengths are `past_mask`, `past_lengths`."""
        positions = past_lengths[:, None] + torch.arange(mask.shape[1], device=self.device)
        return self.model.base_model(attention_mask=torch.cat([past_mask, mask], dim=1), position_ids=positions,
                                     past_key_values=out.past_key_values, use_cache=True, **inputs).last_hidden_state

    def logits(self, hidden: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """LM-head logits of final hidden states [..., H], for the whole vocabulary or only the token ids
        `rows` [A]. Chosen rows are computed in fp32 whatever the model's dtype: a bf16 logit near 20 is
        a multiple of 0.125, coarser than the gap between two answers that decides a prediction."""
        if rows is None:
            head = self.model.get_output_embeddings()
            logits = hidden @ head.weight.T
            if getattr(head, "bias", None) is not None:
                logits = logits + head.bias
            return self._softcap(logits)
        weight, bias = self._head_rows(rows)
        logits = hidden.float() @ weight.T
        return self._softcap(logits if bias is None else logits + bias)

    def _head_rows(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The LM head's weight rows (and bias entries, if any) of token ids, in fp32."""
        head = self.model.get_output_embeddings()
        bias = getattr(head, "bias", None)
        return head.weight[ids].float(), None if bias is None else bias[ids].float()

    def _softcap(self, logits: torch.Tensor) -> torch.Tensor:
        cap = getattr(self.config, "final_logit_softcapping", None)
        return torch.tanh(logits / cap) * cap if cap else logits

    def _log_normaliser(self, hidden: torch.Tensor, chunk: int = 256) -> torch.Tensor:
        """log Σ_vocab exp(logit) per hidden state [N, 1] (the full-vocabulary head, in the model's dtype),
        `chunk` rows at a time."""
        return torch.cat([torch.logsumexp(self.logits(hidden[i : i + chunk]).float(), dim=-1, keepdim=True)
                          for i in range(0, hidden.shape[0], chunk)]) if hidden.shape[0] else hidden.new_zeros(0, 1)

    def prefill_context(self, context: Embedded) -> tuple[Embedded, object]:
        """A context every input starts with (one row: BOS and the anchor text before soft tokens) run once;
        its KV cache is reused by `continue_context` and `score_answers(..., context=...)`."""
        if context.embeds.shape[0] != 1:
            raise LwError(f"a shared context is one row, got {context.embeds.shape[0]}")
        with torch.no_grad():
            return self._prefill(context, use_cache=True)

    def continue_context(self, context: tuple[Embedded, object], inputs: Embedded):
        """The forward pass of `inputs` (rows of equal length) after a `prefill_context` result, on a copy
        of its cache (the cache stays as it was): the joined input and the model's output."""
        if not bool(inputs.mask.all()):
            raise LwError("inputs read after a shared context must have equal lengths (no padding)")
        (left, out), batch = context, inputs.embeds.shape[0]
        cache = copy.deepcopy(out.past_key_values)
        cache.batch_repeat_interleave(batch)
        joined = Embedded(torch.cat([left.embeds.expand(batch, -1, -1), inputs.embeds], 1),
                          torch.cat([left.mask.expand(batch, -1), inputs.mask], 1))
        positions = left.mask.sum() + torch.arange(inputs.mask.shape[1], device=self.device)[None].expand(batch, -1)
        return joined, self.model.base_model(inputs_embeds=inputs.embeds, attention_mask=joined.mask,
                                             position_ids=positions, past_key_values=cache, use_cache=True)

    def score_answers(self, prefix: Embedded, answers: Sequence[Sequence[int]], normaliser: str = "vocab",
                      context: tuple[Embedded, object] | None = None, relative: bool = False) -> AnswerScores:
        """Log-probs of every answer (token ids, multi-token allowed) after every prefix.

        The prefix runs once. Multi-token answers continue from its KV cache as a token trie
        (`answer_trie`): one hidden state and one full-vocabulary normaliser per distinct answer prefix,
        all of an example's in one forward pass with tree attention. The LM head runs only on the
        positions that predict an answer token, never on the prefix.

        `normaliser="answers"` (an approximation for a training loss, never for scoring) normalises each
        token over the answers' distinct next tokens at its trie node instead of over the vocabulary: no
        full-vocabulary head at all.

        `context` (`prefill_context`): `prefix` is read after that shared context's cached KV, which is
        not recomputed; the same scores as `prefix` joined after the context, for rows of equal length.

        `relative=True` (for decisions: serving, latency): every answer's first token is predicted at the
        same position, so that position's full-vocabulary normaliser is one constant per example; it is not
        computed, and each row's scores are its log-probs plus that constant. The argmax, the softmax over
        the answers, calibration and the answer cross-entropy are unchanged; with single-token answers no
        full-vocabulary head runs at all.
        """
        if not answers or any(len(a) == 0 for a in answers):
            raise LwError("every answer needs at least one token")
        if normaliser not in NORMALISERS:
            raise LwError(f"unknown answer normaliser {normaliser!r}; known: {', '.join(NORMALISERS)}")
        trie = AnswerTrie.build(answers, self.device)
        if context is None:
            left, out = self._prefill(prefix, use_cache=trie.num_nodes > 0)
        else:
            left, out = self.continue_context(context, prefix)
        last = out.last_hidden_state[:, -1]
        hidden = trie_hidden(self, left, out, left.lengths, trie)  # [B, N, H]
        if normaliser == "answers":
            return restricted_scores(self, last, hidden, trie)
        first = self.logits(last, rows=trie.tokens_of[:, 0])  # [B, A]
        if not relative:
            first = first - self._log_normaliser(last)
        if trie.num_nodes == 0:
            return AnswerScores(first[:, :, None], trie.mask)
        normalisers = self._log_normaliser(hidden.flatten(0, 1))[:, 0].view(hidden.shape[:2])
        return token_scores(self, torch.cat([hidden, last[:, None]], 1), first, normalisers, trie)

    def score_answers_full(self, prefix: Embedded, answers: Sequence[Sequence[int]]) -> AnswerScores:
        """Reference implementation: one full forward (full-vocab logits at every position) per answer.
        Slow; kept to test `score_answers` and to benchmark the saving."""
        batch, longest = prefix.embeds.shape[0], max(len(a) for a in answers)
        token_logprobs = prefix.embeds.new_zeros(batch, len(answers), longest, dtype=torch.float32)
        token_mask = torch.zeros(len(answers), longest, dtype=torch.long, device=self.device)
        for a, answer in enumerate(answers):
            ids = torch.tensor(list(answer), device=self.device)
            full = self.compose([[prefix.embeds[b, : int(prefix.lengths[b])], ids] for b in range(batch)])
            logp = F.log_softmax(self.model(inputs_embeds=full.embeds, attention_mask=full.mask).logits.float(), -1)
            for b in range(batch):
                start = int(prefix.lengths[b]) - 1
                positions = torch.arange(start, start + len(answer), device=self.device)
                token_logprobs[b, a, : len(answer)] = logp[b, positions, ids]
            token_mask[a, : len(answer)] = 1
        return AnswerScores(token_logprobs, token_mask)

    @torch.no_grad()
    def generate(self, texts: Sequence[str], max_new_tokens: int = 32, max_tokens: int | None = None) -> list[str]:
        """Greedy continuation of each text (one at a time: no padding, so no position-id pitfalls)."""
        outputs = []
        for text in texts:
            ids, mask = self.tokenize([text], max_tokens)
            out = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
            )
            outputs.append(self.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))
        return outputs

    @torch.no_grad()
    def generate_from(self, prefix: Embedded, max_new_tokens: int = 32) -> list[str]:
        """Greedy continuation of each embedded prefix (text embeddings and soft tokens alike), one
        example at a time as in `generate`: no padding, so no position-id pitfalls."""
        outputs = []
        for i, n in enumerate(prefix.lengths.tolist()):
            out = self.model.generate(
                inputs_embeds=prefix.embeds[i : i + 1, :n],
                attention_mask=prefix.mask[i : i + 1, :n],
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
            )
            outputs.append(self.tokenizer.decode(out[0], skip_special_tokens=True))  # new tokens only
        return outputs
