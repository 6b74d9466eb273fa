"""Receiver backends: what runs the frozen receiver on a batch of inputs (soft tokens and anchor text as
embeddings) and scores the answers. `hf` is the in-process reference."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from lw_core import Embedded, FrozenLM, LwError

BACKENDS = ("hf", "llama-cpp", "vllm")


class ReceiverBackend(Protocol):
    name: str

    def score(self, prefix: Embedded, answer_ids: Sequence[Sequence[int]]) -> torch.Tensor:
        """[B, A] float32 log-probabilities of each answer's tokens after each input."""
        ...

    def generate(self, prefix: Embedded, max_new_tokens: int) -> list[str]:
        ...


class HFReceiver:
    """The receiver in this process through transformers (lw-core's FrozenLM): the reference."""

    name = "hf"
    reads_prefilled_start = True  # `score(..., start=)`: the constant start's KV computed once

    def __init__(self, lm: FrozenLM):
        self.lm = lm

    def score(self, prefix: Embedded, answer_ids: Sequence[Sequence[int]], start: object | None = None,
              relative: bool = False) -> torch.Tensor:
        """`prefix` read after `start` (`FrozenLM.prefill_context`) when given; `relative`: log-probs up to
        one constant per row (`FrozenLM.score_answers(relative=True)`)."""
        return self.lm.score_answers(prefix, answer_ids, context=start, relative=relative).logprobs.float().cpu()

    def generate(self, prefix: Embedded, max_new_tokens: int) -> list[str]:
        return self.lm.generate_from(prefix, max_new_tokens)


def build_backend(name: str, lm: FrozenLM, *, gguf: str | None = None, gguf_precision: str = "f32",
                  threads: int | None = None, max_batch: int = 32, vllm_url: str | None = None,
                  vllm_model: str | None = None, vllm_logprobs: int = 20) -> ReceiverBackend:
    """Receiver backend `name` around the loaded HF receiver `lm` (llama-cpp: its GGUF, `gguf` or derived
    from `lm`'s embedded preset at `gguf_precision`; vllm: the server at `vllm_url`; both keep `lm`'s
    tokenizer and embeddings)."""
    if name == "hf":
        return HFReceiver(lm)
    if name == "vllm":
        from lw_serve.vllm_receiver import VllmReceiver

        if not vllm_url:
            raise LwError("the vllm receiver backend needs --vllm-url (a vLLM server started with --enable-prompt-embeds)")
        return VllmReceiver(lm, vllm_url, model=vllm_model, logprobs=vllm_logprobs, max_rows=max_batch)
    if name == "llama-cpp":
        from lw_serve.llama_receiver import LlamaCppReceiver, load_llama_cpp
        from lw_serve.receiver_gguf import receiver_gguf

        load_llama_cpp()  # the missing extra fails before any GGUF is written
        return LlamaCppReceiver(lm, receiver_gguf(lm.name, gguf_precision, gguf), threads=threads,
                                max_sequences=max_batch)
    raise LwError(f"unknown receiver backend {name!r}; known: {', '.join(BACKENDS)}")
