"""The llama-cpp receiver backend against the HF receiver on the same input embeddings, on a tiny random
Gemma3 written as a GGUF here: the same log-probabilities for single- and multi-token answers, batched in
groups, greedy generation alike, and a GGUF of another model refused in one line. Skipped without
llama-cpp-python (lw-serve's `llama-cpp` extra)."""

import json

import pytest
import torch
from lw_bridge.testing import train_tiny_run
from lw_core import LwError
from lw_core.testing import tiny_gemma3

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (lw-serve[llama-cpp])")

from lw_serve.backends import build_backend  # noqa: E402
from lw_serve.engine import load_engine  # noqa: E402
from lw_serve.llama_receiver import LlamaCppReceiver, check_attention_scale  # noqa: E402

ANSWERS = [[40], [41, 42, 43], [41, 44], [45, 46]]


@pytest.fixture(scope="module")
def lm(tiny_receiver):
    return tiny_receiver


@pytest.fixture(scope="module")
def gguf_path(tiny_receiver_gguf):
    return tiny_receiver_gguf


def prefixes(lm, lengths=(3, 7, 1, 12, 5), before="Review: "):
    """BOS and anchor text, soft tokens at the scale of real embeddings (what a bridge's adapter emits),
    anchor text."""
    gen = torch.Generator().manual_seed(sum(lengths))
    start = torch.tensor([lm.tokenizer.bos_token_id, *lm.token_ids(before)])
    anchor = torch.tensor(lm.token_ids("\nAnswer:"))
    return lm.compose([[start, torch.randn(n, lm.hidden_size, generator=gen) * lm.embedding_rms(), anchor]
                       for n in lengths])


def test_scores_match_the_hf_receiver_on_the_same_embeddings(lm, gguf_path):
    prefix = prefixes(lm)
    backend = LlamaCppReceiver(lm, gguf_path, threads=1, max_sequences=2, context=256)  # 3 groups
    expected = lm.score_answers(prefix, ANSWERS).logprobs.float()
    got = backend.score(prefix, ANSWERS)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=2e-3), (got - expected).abs().max()
    assert torch.equal(got.argmax(-1), expected.argmax(-1))


def test_the_inputs_constant_start_is_evaluated_once_and_kept(lm, gguf_path):
    backend = LlamaCppReceiver(lm, gguf_path, threads=1, max_sequences=8)
    start = 1 + len(lm.token_ids("Review: "))
    for lengths in [(3, 7, 1), (2,), (4, 4)]:  # a group sets the shared start; later calls reuse it
        prefix = prefixes(lm, lengths)
        assert torch.allclose(backend.score(prefix, ANSWERS), lm.score_answers(prefix, ANSWERS).logprobs, atol=2e-3)
        assert backend.shared is not None and len(backend.shared) == start
    other = prefixes(lm, (2, 3), before="Rev")  # another anchor: the shared start is cut back to what agrees
    assert torch.allclose(backend.score(other, ANSWERS), lm.score_answers(other, ANSWERS).logprobs, atol=2e-3)
    a, b = lm.token_ids("Review: "), lm.token_ids("Rev")
    agree = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    assert len(backend.shared) == 1 + agree


def test_one_group_and_many_give_the_same_scores(lm, gguf_path):
    prefix = prefixes(lm)
    one = LlamaCppReceiver(lm, gguf_path, threads=1, max_sequences=8).score(prefix, ANSWERS)
    many = LlamaCppReceiver(lm, gguf_path, threads=1, max_sequences=1).score(prefix, ANSWERS)
    assert torch.allclose(one, many, atol=1e-3)  # llama.cpp's batched kernels sum in another order (3.7e-4 seen)


def test_greedy_generation_matches_the_hf_receiver(lm, gguf_path):
    prefix = prefixes(lm, lengths=(2, 6))
    backend = build_backend("llama-cpp", lm, gguf=str(gguf_path), threads=1, max_batch=4)
    assert backend.generate(prefix, 6) == lm.generate_from(prefix, 6)


def test_a_gguf_of_another_model_is_refused_in_one_line(gguf_path):
    other = tiny_gemma3()  # another vocabulary and width
    with pytest.raises(LwError, match=r"tiny-gemma3-f32\.gguf \(hidden 64, vocabulary \d+\) is not receiver"):
        LlamaCppReceiver(other, gguf_path, threads=1)


def test_a_missing_gguf_and_an_input_over_the_context_are_one_line_errors(lm, gguf_path, tmp_path):
    with pytest.raises(LwError, match=r"--gguf .*nope\.gguf: no such file"):
        build_backend("llama-cpp", lm, gguf=str(tmp_path / "nope.gguf"))
    backend = LlamaCppReceiver(lm, gguf_path, threads=1, max_sequences=2, context=16)
    with pytest.raises(LwError, match=r"an input of \d+ positions does not fit the llama.cpp context of 16"):
        backend.score(prefixes(lm, lengths=(4,)), ANSWERS)


def test_a_gemma3_scaling_attention_unlike_llama_cpp_is_refused_in_one_line(lm):
    other = tiny_gemma3()  # query_pre_attn_scalar 256 (the HF default), head_dim 16
    with pytest.raises(LwError, match=r"scales attention by 1/sqrt\(256\) .* llama.cpp's gemma3 by 1/sqrt\(16\)"):
        check_attention_scale(other)
    check_attention_scale(lm)  # query_pre_attn_scalar = head_dim, as in the real Gemma3


def test_a_served_bridge_answers_alike_on_either_backend(texts, gguf_of, tmp_path):
    run_dir = train_tiny_run(tmp_path / "train", wire_formats=["int8"])
    receiver = tmp_path / "train" / "models" / "receiver" / "config.json"  # scaled as llama.cpp scales
    config = json.loads(receiver.read_text())
    receiver.write_text(json.dumps(config | {"query_pre_attn_scalar": config["head_dim"]}))
    hf = load_engine(run_dir, "pipeline", device="cpu")
    gguf = gguf_of(hf.receiver, tmp_path / "receiver.gguf")
    llama = load_engine(run_dir, "pipeline", device="cpu", backend="llama-cpp",
                        backend_options={"gguf": str(gguf), "threads": 1})
    assert llama.backend.name == "llama-cpp"
    expected, got = hf.predict(texts, {}), llama.predict(texts, {})
    assert [a.answer for a in got] == [a.answer for a in expected]
    assert torch.allclose(torch.tensor([a.scores for a in got]), torch.tensor([a.scores for a in expected]), atol=2e-3)


@pytest.mark.parametrize(("context", "max_sequences", "threads", "message"), [
    (16, 32, 1, r"context of 16 tokens is too small for 32 inputs per batch: it needs at least 65"),
    (0, 1, 1, r"context of 0 tokens is too small"),
    (8192, 0, 1, r"1\.\.127 inputs per batch \(--max-batch\), got 0"),
    (8192, 128, 1, r"1\.\.127 inputs per batch \(--max-batch\), got 128"),
    (8192, 4, 0, r"at least 1 thread, got 0"),
])
def test_values_llama_cpp_would_abort_on_are_refused_before_it_runs(lm, gguf_path, context, max_sequences,
                                                                     threads, message):
    with pytest.raises(LwError, match=message):
        LlamaCppReceiver(lm, gguf_path, threads=threads, max_sequences=max_sequences, context=context)
    smallest = LlamaCppReceiver(lm, gguf_path, threads=1, max_sequences=16, context=33)  # the least it accepts
    prefix = prefixes(lm, lengths=(1,))
    assert torch.allclose(smallest.score(prefix, [[40]]), lm.score_answers(prefix, [[40]]).logprobs, atol=2e-3)
