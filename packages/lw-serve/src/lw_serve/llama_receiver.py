"""The receiver on llama.cpp (llama-cpp-python's low-level API): each input's embeddings — anchors, BOS
and soft tokens exactly as the HF receiver gets them — go in as a batch of embeddings (`llama_batch.embd`),
one sequence per input, and the answers are scored like `FrozenLM.score_answers` scores them: the sum of
each answer token's log-probability over the full vocabulary.

The embeddings are passed unscaled: lw's embeddings are those the first decoder layer sees (Gemma's
√d scale already applied by `embed_tokens`), and llama.cpp's gemma3 graph scales token ids' embeddings
by √d but leaves raw input embeddings as they are (`ubatch.token ? sqrtf(n_embd) : 1.0f`)."""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from lw_core import Embedded, FrozenLM, LwError


def load_llama_cpp():
    try:
        import llama_cpp
    except ImportError as err:
        raise LwError("the llama-cpp receiver backend needs llama-cpp-python: install lw-serve[llama-cpp] "
                      "(in the workspace: uv sync --extra llama-cpp)") from err
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # its log callback prints below ERROR
    return llama_cpp


MAX_SEQUENCES = (256 - 1) // 2
"""llama.cpp holds at most 256 sequences (LLAMA_MAX_SEQ); each input needs two, plus the shared start."""


def check_context(context: int, max_sequences: int, threads: int | None) -> None:
    """Refuse, in one line, the values llama.cpp would abort the process on (a C assertion, which Python
    cannot catch): a context must hold one output per sequence (its batch is the context, and
    `llama_init_from_model` asserts `n_seq_max <= n_batch`), and at most 256 sequences exist."""
    if not 1 <= max_sequences <= MAX_SEQUENCES:
        raise LwError(f"llama.cpp scores 1..{MAX_SEQUENCES} inputs per batch (--max-batch), got {max_sequences}")
    if threads is not None and threads < 1:
        raise LwError(f"llama.cpp needs at least 1 thread, got {threads}")
    sequences = 2 * max_sequences + 1
    if context < sequences:
        raise LwError(f"a llama.cpp context of {context} tokens is too small for {max_sequences} inputs per batch: "
                      f"it needs at least {sequences} (two sequences per input and the shared start)")


def check_attention_scale(lm: FrozenLM) -> None:
    """llama.cpp's gemma3 graph scales queries by 1/√head_dim (1/√(d/heads) at 62 layers) and reads no
    `query_pre_attn_scalar` from a GGUF: refuse an HF Gemma3 receiver that scales by another value (the
    real Gemma3 models scale as llama.cpp does), whose scores llama.cpp would silently change."""
    config = lm.config
    scalar = getattr(config, "query_pre_attn_scalar", None)
    if scalar is None or getattr(config, "model_type", "") not in ("gemma3", "gemma3_text"):
        return
    heads, layers = config.num_attention_heads, config.num_hidden_layers
    expected = config.hidden_size // heads if layers == 62 else config.head_dim
    if scalar != expected:
        raise LwError(f"receiver {lm.name!r} scales attention by 1/sqrt({scalar}) (query_pre_attn_scalar) but "
                      f"llama.cpp's gemma3 by 1/sqrt({expected}): its scores would differ from the HF receiver's")


class LlamaCppReceiver:
    """A receiver GGUF on llama.cpp, checked against the HF receiver's shape (hidden size, vocabulary).
    Inputs are scored `max_sequences` at a time, each group in one `llama_decode`; calls are serialised."""

    name = "llama-cpp"

    def __init__(self, lm: FrozenLM, gguf: str | os.PathLike, *, threads: int | None = None,
                 max_sequences: int = 32, context: int = 8192):
        check_context(context, max_sequences, threads)
        ll = self.ll = load_llama_cpp()
        ll.llama_backend_init()
        self.gguf, self.tokenizer = Path(gguf), lm.tokenizer
        eos = lm.model.generation_config.eos_token_id
        eos = lm.tokenizer.eos_token_id if eos is None else eos
        self.stop_ids = {eos} if isinstance(eos, int) else set(eos)  # where HF's generate stops
        self.max_sequences, self.context = max_sequences, context
        self.model = ll.llama_model_load_from_file(os.fsencode(self.gguf), ll.llama_model_default_params())
        if not self.model:
            raise LwError(f"llama.cpp could not load {self.gguf}")
        self.vocab = ll.llama_model_get_vocab(self.model)
        self.n_vocab, self.n_embd = ll.llama_vocab_n_tokens(self.vocab), ll.llama_model_n_embd(self.model)
        if (self.n_embd, self.n_vocab) != (lm.hidden_size, lm.vocab_size):
            shape = f"hidden {self.n_embd}, vocabulary {self.n_vocab}"
            self.close()  # frees the model once; __del__ then finds nothing left to free
            raise LwError(f"{self.gguf} ({shape}) is not receiver {lm.name!r} (hidden {lm.hidden_size}, "
                          f"vocabulary {lm.vocab_size})")
        try:
            check_attention_scale(lm)
        except LwError:
            self.close()
            raise
        params = ll.llama_context_default_params()
        params.n_ctx = params.n_batch = context
        # each input's sequence, its copy to continue an answer on, and the inputs' shared start
        params.n_seq_max = 2 * max_sequences + 1
        self.shared_seq, self.shared = 2 * max_sequences, None
        params.kv_unified = True  # copying a sequence shares its cells
        params.n_threads = params.n_threads_batch = threads or torch.get_num_threads()
        params.no_perf = True
        self.ctx = ll.llama_init_from_model(self.model, params)
        if not self.ctx:
            self.close()
            raise LwError(f"llama.cpp could not create a context of {context} tokens for {self.gguf}")
        self.memory = ll.llama_get_memory(self.ctx)
        self.lock = threading.Lock()

    def close(self) -> None:
        if getattr(self, "ctx", None):
            self.ll.llama_free(self.ctx)
            self.ctx = None
        if getattr(self, "model", None):
            self.ll.llama_model_free(self.model)
            self.model = None

    def __del__(self):
        self.close()

    # ---- batches -----------------------------------------------------------------------------
    def _decode(self, seqs: Sequence[int], starts: Sequence[int], rows: Sequence[np.ndarray],
                outputs: Sequence[Sequence[int]]) -> list[list[torch.Tensor]]:
        """One `llama_decode` of sequence `seqs[i]` continuing at position `starts[i]` with `rows[i]`
        ([n, d] float32 embeddings, or [n] token ids); the full-vocabulary log-probabilities [V] at each
        row's positions `outputs[i]`."""
        ll, embeds = self.ll, rows[0].ndim == 2
        total = sum(len(r) for r in rows)
        batch = ll.llama_batch_init(total, self.n_embd if embeds else 0, 1)
        try:
            flat = np.ascontiguousarray(np.concatenate(rows), dtype=np.float32 if embeds else np.int32)
            ctypes.memmove(batch.embd if embeds else batch.token, flat.ctypes.data, flat.nbytes)
            wanted, i = [], 0
            for seq, start, row, out in zip(seqs, starts, rows, outputs, strict=True):
                keep = set(out)
                for j in range(len(row)):
                    batch.pos[i], batch.n_seq_id[i], batch.seq_id[i][0] = start + j, 1, seq
                    batch.logits[i] = j in keep
                    i += 1
                wanted.append([i - len(row) + j for j in out])
            batch.n_tokens = total
            code = ll.llama_decode(self.ctx, batch)
            if code != 0:
                raise LwError(f"llama.cpp could not evaluate a batch of {total} positions (code {code}); "
                              f"a larger context may be needed")
            return [[self._logprobs(k) for k in ks] for ks in wanted]
        finally:
            ll.llama_batch_free(batch)

    def _logprobs(self, index: int) -> torch.Tensor:
        logits = np.ctypeslib.as_array(self.ll.llama_get_logits_ith(self.ctx, index), shape=(self.n_vocab,))
        return torch.from_numpy(logits.copy()).log_softmax(dim=-1)

    def _groups(self, lengths: Sequence[int], extra: int) -> list[list[int]]:
        """Rows in groups of at most `max_sequences` whose prefixes (plus `extra` positions each) fit
        the context."""
        groups: list[list[int]] = [[]]
        used = 0
        for b, n in enumerate(lengths):
            if n + extra > self.context:
                raise LwError(f"an input of {n} positions does not fit the llama.cpp context of {self.context}")
            if len(groups[-1]) == self.max_sequences or used + n + extra > self.context:
                groups.append([])
                used = 0
            groups[-1].append(b)
            used += n + extra
        return groups

    def _prefill(self, prefix: Embedded, group: list[int]) -> list[torch.Tensor]:
        """Each row of `group` in its own sequence 0..G-1; the log-probabilities after each row's last
        position. Each sequence starts as a copy of the shared one (`_shared_prefix`), so only the
        positions after it are evaluated."""
        for seq in range(2 * self.max_sequences):
            self.ll.llama_memory_seq_rm(self.memory, seq, -1, -1)
        lengths = [int(prefix.lengths[b]) for b in group]
        rows = [prefix.embeds[b, :n].float().cpu().numpy() for b, n in zip(group, lengths, strict=True)]
        shared = self._shared_prefix(rows)
        for seq in range(len(group) if shared else 0):
            self.ll.llama_memory_seq_cp(self.memory, self.shared_seq, seq, -1, -1)
        firsts = self._decode(range(len(group)), [shared] * len(group), [r[shared:] for r in rows],
                              [[n - 1 - shared] for n in lengths])
        return [f[0] for f in firsts]

    def _shared_prefix(self, rows: list[np.ndarray]) -> int:
        """How many leading positions of `rows` the shared sequence holds: the constant start of every
        input (BOS and the anchor text before the soft tokens), evaluated once and kept across calls.
        It is cut back where new rows differ from it, and (re)filled from a group of two or more rows
        where they all agree; each row's last position always stays outside it."""
        limit = min(len(r) for r in rows) - 1
        cached = self.shared if self.shared is not None else (rows[0] if len(rows) > 1 else rows[0][:0])
        same = 0
        while same < min(limit, len(cached)) and all(np.array_equal(r[same], cached[same]) for r in rows):
            same += 1
        if self.shared is not None and same == len(self.shared):
            return same
        self.ll.llama_memory_seq_rm(self.memory, self.shared_seq, same if self.shared is not None else 0, -1)
        if self.shared is None and same:
            self._decode([self.shared_seq], [0], [rows[0][:same]], [[]])
        self.shared = rows[0][:same].copy() if same else None
        return same

    # ---- the backend interface ---------------------------------------------------------------
    @torch.no_grad()
    def score(self, prefix: Embedded, answer_ids: Sequence[Sequence[int]]) -> torch.Tensor:
        lengths = prefix.lengths.tolist()
        longest = max(len(a) for a in answer_ids)
        scores = torch.zeros(len(lengths), len(answer_ids))
        with self.lock:
            for group in self._groups(lengths, longest):
                firsts = self._prefill(prefix, group)
                g = len(group)
                for a, answer in enumerate(answer_ids):
                    scores[group, a] = torch.stack([f[answer[0]] for f in firsts])
                    if len(answer) == 1:
                        continue
                    for s in range(g):  # continue the answer on a copy of each input's sequence
                        self.ll.llama_memory_seq_cp(self.memory, s, g + s, -1, -1)
                    tokens = np.asarray(answer[:-1], dtype=np.int32)
                    steps = self._decode([g + s for s in range(g)], [lengths[b] for b in group], [tokens] * g,
                                         [range(len(tokens))] * g)
                    for s, logprobs in enumerate(steps):
                        scores[group[s], a] += sum(float(lp[t]) for lp, t in zip(logprobs, answer[1:], strict=True))
                        self.ll.llama_memory_seq_rm(self.memory, g + s, -1, -1)
        return scores

    @torch.no_grad()
    def generate(self, prefix: Embedded, max_new_tokens: int) -> list[str]:
        """Greedy continuation of each input, one at a time, until an end-of-sequence token (the HF
        receiver's generation config's)."""
        outputs = []
        with self.lock:
            for b, n in enumerate(prefix.lengths.tolist()):
                logprobs, produced = self._prefill(prefix, [b])[0], []
                for step in range(max_new_tokens):
                    token = int(logprobs.argmax())
                    if token in self.stop_ids:
                        break
                    produced.append(token)
                    if step + 1 < max_new_tokens:
                        logprobs = self._decode([0], [n + step], [np.asarray([token], np.int32)], [[0]])[0][0]
                outputs.append(self.tokenizer.decode(produced, skip_special_tokens=True))
        return outputs
