import pytest
import torch
from lw_core import Embedded, LwError
from lw_core.testing import tiny_gemma3, tiny_llama


def test_tiny_pair_differs_in_vocab_and_width():
    llama, gemma = tiny_llama(), tiny_gemma3()
    assert llama.vocab_size != gemma.vocab_size
    assert llama.hidden_size != gemma.hidden_size


def test_frozen_but_differentiable_in_inputs(lm):
    assert not any(p.requires_grad for p in lm.parameters())
    assert not lm.model.training
    lm.train()
    assert not lm.model.training  # the wrapped model stays in eval mode
    soft = torch.randn(2, 3, lm.hidden_size, requires_grad=True)
    prefix = lm.compose([[torch.tensor(lm.bos_ids + lm.token_ids("ab"), dtype=torch.long), soft[i]] for i in range(2)])
    lm.score_answers(prefix, [lm.token_ids(" yes"), lm.token_ids(" no")]).logprobs.sum().backward()
    assert soft.grad is not None and soft.grad.abs().sum() > 0


def test_bos_policy():
    assert tiny_llama().bos_ids == []
    gemma = tiny_gemma3()
    assert gemma.bos_ids == [gemma.tokenizer.bos_token_id]
    ids, mask = gemma.tokenize(["abc", "a"])
    assert ids[0, 0].item() == gemma.tokenizer.bos_token_id and mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]


def test_tokenize_truncates_and_right_pads(lm):
    ids, mask = lm.tokenize(["a long enough text", "x"], max_tokens=5)
    assert ids.shape[1] == 5 and mask[1].tolist()[-1] == 0


def test_embed_is_what_the_first_layer_sees():
    gemma = tiny_gemma3()
    ids = torch.tensor([5, 6, 7])
    raw = gemma.model.get_input_embeddings().weight[ids]
    scale = gemma.hidden_size**0.5
    assert torch.allclose(gemma.embed(ids), raw * scale, atol=1e-4)  # Gemma scales inside its embedding
    llama = tiny_llama()
    assert torch.allclose(llama.embed(ids), llama.model.get_input_embeddings().weight[ids])


def test_embedding_rms_matches_direct_computation(lm):
    ids = torch.arange(lm.vocab_size)
    expected = lm.embed(ids).pow(2).mean(-1).sqrt().mean().item()
    assert lm.embedding_rms() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("layer", [0, 1, 2, 3, -1, -2, -4])
def test_hidden_states_match_full_forward_and_respect_padding(lm, layer):
    e = lm.embed_texts(["hello there", "a"])
    full = lm.model.base_model(inputs_embeds=e.embeds, attention_mask=e.mask, output_hidden_states=True).hidden_states
    h = lm.hidden_states(e, layer)
    assert torch.allclose(h.embeds, full[layer], atol=1e-5)
    alone = lm.hidden_states(["a"], layer)  # padding does not change the real positions
    n = int(alone.mask.sum())
    assert torch.allclose(h.embeds[1, :n], alone.embeds[0, :n], atol=1e-4)


def test_hidden_states_rejects_bad_layer(lm):
    with pytest.raises(LwError, match="out of range"):
        lm.hidden_states(["a"], 99)


def test_compose_mixes_ids_and_soft_tokens(lm):
    soft = torch.randn(2, lm.hidden_size)
    ids = torch.tensor(lm.token_ids("ab"))
    out = lm.compose([[ids, soft], [soft]])
    assert out.embeds.shape == (2, len(ids) + 2, lm.hidden_size)
    assert out.mask.tolist()[1] == [1, 1] + [0] * len(ids)
    assert torch.allclose(out.embeds[0, : len(ids)], lm.embed(ids))
    assert torch.allclose(out.embeds[1, :2], soft)


def test_score_answers_matches_full_forward_reference(lm):
    # prefixes longer than the tiny Gemma's sliding window (16) exercise the cache path for real
    prefix = lm.embed_texts(["The capital of France is", "a b c d e f g h i j k l", "x"])
    answers = [lm.token_ids(" Paris"), lm.token_ids(" no way"), lm.token_ids(" x")]
    fast, slow = lm.score_answers(prefix, answers), lm.score_answers_full(prefix, answers)
    assert fast.token_logprobs.shape == (3, 3, max(len(a) for a in answers))
    assert torch.allclose(fast.token_logprobs, slow.token_logprobs, atol=1e-4)
    assert torch.allclose(fast.logprobs, slow.logprobs, atol=1e-4)
    assert (fast.logprobs <= 0).all()


def test_score_single_token_answers_and_padding_invariance(lm):
    answers = [[5], [6], [7]]
    both = lm.score_answers(lm.embed_texts(["hello", "a much longer prefix here"]), answers).logprobs
    alone = lm.score_answers(lm.embed_texts(["hello"]), answers).logprobs
    assert torch.allclose(both[0], alone[0], atol=1e-4)


def test_left_padded_roundtrip():
    e = Embedded(torch.arange(12.0).view(2, 3, 2), torch.tensor([[1, 1, 0], [1, 1, 1]]))
    left = e.left_padded()
    assert left.mask.tolist() == [[0, 1, 1], [1, 1, 1]]
    assert torch.equal(left.embeds[0, 1:], e.embeds[0, :2])


def test_score_rejects_empty_answer(lm):
    with pytest.raises(LwError):
        lm.score_answers(lm.embed_texts(["a"]), [[]])


def test_generate_returns_text(lm):
    out = lm.generate(["hello"], max_new_tokens=3)
    assert isinstance(out[0], str)


def test_generate_from_embeddings_equals_generate_from_text(lm):
    texts = ["the film was", "a b c d e"]
    prefix = lm.embed_texts(texts)  # right-padded batch: each row continues from its own length
    assert lm.generate_from(prefix, max_new_tokens=5) == lm.generate(texts, max_new_tokens=5)


@pytest.mark.parametrize("width", [31, 32, 33, 65])
def test_batched_scores_equal_one_at_a_time_at_every_width(width, tmp_path):
    """A padded batch scores each prefix as it scores alone, whatever the batch width; on CUDA through
    the loader's attention choice (SDPA's efficient kernel breaks at key lengths 1 mod 32)."""
    from lw_core.lm import FrozenLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tiny = tiny_gemma3()
    tiny.model.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    lm = FrozenLM.load(str(tmp_path), dtype="fp32", device=device)
    texts = ["a" * (width - len(lm.bos_ids)), "short", "a b c"]
    prefix = lm.embed_texts(texts)
    assert prefix.embeds.shape[1] == width
    answers = [lm.token_ids(" yes"), lm.token_ids(" no way")]
    batched = lm.score_answers(prefix, answers).logprobs
    for i, text in enumerate(texts):
        alone = lm.score_answers(lm.embed_texts([text]), answers).logprobs[0]
        assert torch.allclose(batched[i], alone, atol=1e-4), (width, text)


def test_last_hidden_after_a_context_equals_one_forward_and_trains_only_the_inputs(lm):
    context = lm.embed_texts(["a long enough context", "ab"])
    soft = torch.randn(2, 3, lm.hidden_size, requires_grad=True)
    tail = torch.tensor(lm.token_ids(" x y"), dtype=torch.long)
    inputs = lm.compose([[soft[0], tail], [soft[1]]])  # unequal lengths: right-padded
    full = lm.compose([[context.embeds[i, : int(context.lengths[i])], inputs.embeds[i, : int(inputs.lengths[i])]]
                       for i in range(2)])
    expected = lm.last_hidden(full)
    got = lm.last_hidden(inputs, context)
    assert torch.allclose(got, expected, atol=1e-4)
    got.sum().backward()
    assert soft.grad is not None and soft.grad.abs().sum() > 0
    assert soft.grad[1].abs().sum() > 0  # each example's soft tokens reach its own last position


def test_answer_logits_are_fp32_in_a_bf16_model():
    """A bf16 logit near 20 is a multiple of 0.125: answers are ranked by fp32 logits of the bf16 states."""
    lm = tiny_gemma3()
    lm.model.to(torch.bfloat16)
    hidden = torch.randn(3, lm.hidden_size, dtype=torch.bfloat16) * 30
    rows = torch.tensor([5, 9])
    got = lm.logits(hidden, rows=rows)
    exact = hidden.float() @ lm.model.get_output_embeddings().weight[rows].float().T
    assert got.dtype == torch.float32 and torch.allclose(got, exact, atol=1e-4)
    prefix = lm.embed_texts(["ab", "a b c"])
    scores = lm.score_answers(prefix, [[5], [9]]).logprobs
    gap = lm.logits(lm.last_hidden(prefix), rows=rows)
    assert torch.allclose(scores[:, 0] - scores[:, 1], gap[:, 0] - gap[:, 1], atol=1e-4)
