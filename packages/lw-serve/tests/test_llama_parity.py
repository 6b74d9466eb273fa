"""Parity of the llama-cpp receiver backend with the HF receiver on the real embedded receiver
(gemma3-270m) and rt-sentiment's test texts through a seeded default bridge: the same soft tokens in,
the same answers out, log-probabilities within a stated tolerance, for an f32 and an f16 GGUF.

Slow (the real models) and skipped without llama-cpp-python. `python -m lw_serve.parity` measures the
whole split and the quantised GGUFs (README)."""

import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (lw-serve[llama-cpp])")

from lw_serve.parity import ParityConfig, parity  # noqa: E402

EXAMPLES = 128
"""The first 128 of rt-sentiment's 1,066 test texts: the whole split takes minutes per backend on a CPU."""
TOLERANCE = {"f32": 0.02, "f16": 0.05}
"""Largest |Δ log-probability| of an answer against hf (the measured maxima with room: README)."""


@pytest.mark.slow
def test_llama_cpp_answers_as_the_hf_receiver_on_the_same_soft_tokens():
    rows = {r["receiver"]: r for r in parity(ParityConfig(limit=EXAMPLES, precisions=list(TOLERANCE)))}
    for precision, tolerance in TOLERANCE.items():
        row = rows[f"llama-cpp {precision}"]
        assert row["examples"] == EXAMPLES
        assert row["same answer"] >= 0.99, row
        assert row["max |Δ logprob|"] <= tolerance, row
