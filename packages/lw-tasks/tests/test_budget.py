"""The one cutting rule of every token-budget control (`lw_tasks.budget`), on tiny tokenizers."""

from __future__ import annotations

import pytest
from lw_core.errors import LwError
from lw_core.testing import tiny_gemma3, tiny_llama
from lw_tasks.budget import truncate_bytes, truncate_tokens


@pytest.fixture(scope="module", params=["llama", "gemma-merges"])
def lm(request):
    return tiny_llama() if request.param == "llama" else tiny_gemma3(word_start_merges=True)


def test_a_token_budget_keeps_the_first_k_tokens(lm):
    text = "a long review that goes on and on"
    for k in (1, 3, 8):
        cut = truncate_tokens(lm, text, k)
        assert len(lm.token_ids(cut)) == k and text.startswith(cut)
    assert truncate_tokens(lm, "ab", 8) == "ab"


@pytest.mark.parametrize("budget", [0, 1, 5, 17, 40])
def test_a_byte_budget_keeps_the_most_whole_tokens_that_fit_in_utf8(lm, budget):
    text = "Context: the café opened in 1998 near the old bridge, and it still serves soup."
    cut = truncate_bytes(lm, text, budget)
    assert len(cut.encode("utf-8")) <= budget and text.startswith(cut)
    n = len(lm.token_ids(cut)) if cut else 0
    assert cut == ("" if n == 0 else truncate_tokens(lm, text, n))  # whole tokens, by the token rule
    assert len(truncate_tokens(lm, text, n + 1).encode("utf-8")) > budget  # one token more would not fit


def test_a_text_within_the_byte_budget_is_kept_whole_and_a_negative_budget_is_refused(lm):
    assert truncate_bytes(lm, "short", 5) == "short"
    with pytest.raises(LwError, match="byte budget must be >= 0"):
        truncate_bytes(lm, "short", -1)
