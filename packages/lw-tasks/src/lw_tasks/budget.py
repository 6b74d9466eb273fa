"""Cutting an input to a budget: the one rule every token-budget control uses (`lw-baseline
token-budget`, lw-train's control at the message's size). The text keeps its first whole tokens of the
reading model's tokenizer, decoded: as many as a token budget allows (`truncate_tokens`), or as many as
fit a byte budget in UTF-8 (`truncate_bytes`: the text cut to a message's wire bytes)."""

from __future__ import annotations

from lw_core.errors import LwError


def truncate_tokens(lm, text: str, budget: int) -> str:
    """The text's first `budget` tokens (the model's tokenizer, no special tokens), decoded."""
    ids = lm.token_ids(text)
    return text if len(ids) <= budget else lm.tokenizer.decode(ids[:budget])


def truncate_bytes(lm, text: str, max_bytes: int) -> str:
    """The text's longest prefix of whole tokens (`truncate_tokens`) whose UTF-8 is at most `max_bytes`."""
    if max_bytes < 0:
        raise LwError(f"a byte budget must be >= 0, got {max_bytes}")
    if len(text.encode("utf-8")) <= max_bytes:
        return text
    fits, lo, hi = "", 1, len(lm.token_ids(text))
    while lo <= hi:  # the decoded prefix grows with its tokens: the most that fit, by bisection
        mid = (lo + hi) // 2
        cut = truncate_tokens(lm, text, mid)
        if len(cut.encode("utf-8")) <= max_bytes:
            fits, lo = cut, mid + 1
        else:
            hi = mid - 1
    return fits


__all__ = ["truncate_bytes", "truncate_tokens"]
