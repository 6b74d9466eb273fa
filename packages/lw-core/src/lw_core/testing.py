"""Tiny randomly initialised models for tests: a Llama and a Gemma3 with different vocabularies and
widths, built from configs in code (no files, no network). Their tokenizers are byte-level and mimic
the real pair's special-token policies: the Llama adds no BOS and pads with EOS; the Gemma adds BOS."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from lw_core.lm import FrozenLM

WORD_START_MERGES = [("Ġ", c) for c in "abcdefghijklmnopqrstuvwxyz"]
"""Space + lower-case letter as one token (as real BPE vocabularies have): answers like " alice smith"
and " bob jones" then start with distinct tokens and go on for several."""


def _byte_tokenizer(specials: list[str], extra: int, add_bos: str | None,
                    merges: list[tuple[str, str]] | None = None) -> PreTrainedTokenizerFast:
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    merged = [a + b for a, b in merges or []]
    vocab = {tok: i for i, tok in enumerate(specials + alphabet + merged + [f"<extra_{i}>" for i in range(extra)])}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=list(merges or [])))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{add_bos} $A", pair=f"{add_bos} $A $B", special_tokens=[(add_bos, vocab[add_bos])]
        )
    return PreTrainedTokenizerFast(tokenizer_object=tok)


def tiny_llama_tokenizer() -> PreTrainedTokenizerFast:
    tok = _byte_tokenizer(["<|im_end|>", "<|im_start|>"], extra=0, add_bos=None)
    tok.eos_token = tok.pad_token = "<|im_end|>"
    return tok


def tiny_gemma_tokenizer(word_start_merges: bool = False) -> PreTrainedTokenizerFast:
    tok = _byte_tokenizer(["<pad>", "<eos>", "<bos>"], extra=41, add_bos="<bos>",
                          merges=WORD_START_MERGES if word_start_merges else None)
    tok.pad_token, tok.eos_token, tok.bos_token = "<pad>", "<eos>", "<bos>"
    return tok


def tiny_llama(seed: int = 0) -> FrozenLM:
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tiny_llama_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    return FrozenLM(LlamaForCausalLM(config), tok, name="tiny-llama")


def tiny_gemma3(seed: int = 1, word_start_merges: bool = False) -> FrozenLM:
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    tok = tiny_gemma_tokenizer(word_start_merges)
    config = Gemma3TextConfig(
        vocab_size=len(tok),
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        sliding_window=16,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        max_position_embeddings=512,
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
    )
    torch.manual_seed(seed)
    return FrozenLM(Gemma3ForCausalLM(config), tok, name="tiny-gemma3")


def save_tiny_pair(folder: Path) -> dict[str, str]:
    """The tiny Llama (sender) and tiny Gemma3 (receiver) saved as HF folders under `folder`, so that
    commands load them by path like any model. Returns {"sender": path, "receiver": path}."""
    out = {}
    for name, factory in (("sender", tiny_llama), ("receiver", tiny_gemma3)):
        lm = factory()
        lm.model.save_pretrained(folder / name)
        lm.tokenizer.save_pretrained(folder / name)
        out[name] = str(folder / name)
    return out
