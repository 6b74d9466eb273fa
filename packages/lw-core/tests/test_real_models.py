"""The real embedded pair (converted from the PyPI GGUF packages on first use).

The pair is loaded in fp32: these are the numerical facts of ../shared/MODELS.md, measured in fp32
(`--dtype auto` is bf16 on CPUs with AVX512-BF16, where gemma's embedding scale alone rounds by 0.2%).
"""

import pytest
import torch
from lw_core import FrozenLM

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    return FrozenLM.load("smollm2-135m", dtype="fp32", device="cpu")


@pytest.fixture(scope="module")
def gemma3():
    return FrozenLM.load("gemma3-270m", dtype="fp32", device="cpu")


def test_shapes_of_the_embedded_pair(smollm2, gemma3):
    assert (smollm2.hidden_size, smollm2.vocab_size, smollm2.num_layers) == (576, 49152, 30)
    assert (gemma3.hidden_size, gemma3.vocab_size, gemma3.num_layers) == (640, 262144, 18)
    assert smollm2.bos_ids == [] and gemma3.bos_ids == [2]


def test_smollm2_knows_the_capital_of_france(smollm2):
    assert "Paris" in smollm2.generate(["The capital of France is"], max_new_tokens=8)[0]


def test_gemma_embedding_scale_and_rms(gemma3):
    ids = torch.tensor([100, 2000, 30000])
    raw = gemma3.model.get_input_embeddings().weight[ids]
    assert torch.allclose(gemma3.embed(ids), raw * 640**0.5, rtol=1e-3)
    assert 0.8 < gemma3.embedding_rms() < 1.3  # MODELS.md: ≈ 1.03 as the first layer sees it


def test_real_answer_scoring_matches_reference(gemma3):
    prefix = gemma3.embed_texts(["The capital of France is", "Two plus two equals"])
    answers = [gemma3.token_ids(" Paris"), gemma3.token_ids(" four"), gemma3.token_ids(" the city of Lyon")]
    fast, ref = gemma3.score_answers(prefix, answers), gemma3.score_answers_full(prefix, answers)
    assert torch.allclose(fast.logprobs, ref.logprobs, atol=1e-3)
    assert fast.logprobs[0].argmax() == 0 and fast.logprobs[1].argmax() == 1


def test_bf16_answer_scoring_ranks_as_the_reference():
    gemma = FrozenLM.load("gemma3-270m", dtype="bf16", device="cpu")
    prefix = gemma.embed_texts(["The capital of France is", "Two plus two equals"])
    answers = [gemma.token_ids(" Paris"), gemma.token_ids(" four"), gemma.token_ids(" the city of Lyon")]
    fast, ref = gemma.score_answers(prefix, answers), gemma.score_answers_full(prefix, answers)
    assert fast.logprobs.dtype == torch.float32
    assert torch.equal(fast.logprobs.argmax(-1), ref.logprobs.argmax(-1))
    assert torch.allclose(fast.logprobs, ref.logprobs, atol=0.25)  # bf16 activations: ~0.06 measured
