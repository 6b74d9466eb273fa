"""`score_answers` (answers as a token trie, tree attention) against the reference that runs one full
forward per answer: scores within 1e-4 in fp32, the same argmax, the same gradients into a soft prefix."""

import pytest
import torch
from lw_core import Embedded, LwError
from lw_core.answer_trie import AnswerTrie

ANSWER_SETS = {
    # shared prefixes, different lengths, single-token answers, one answer the prefix of another
    "shared-prefixes": [[5, 9, 11], [5, 9, 12], [5, 9], [5, 10, 11, 13], [6], [7, 8]],
    "all-single-token": [[5], [6], [7]],
    "one-long-answer": [[30, 31, 32, 33, 34], [31]],
    "identical-first-tokens": [[40, 41], [40, 42], [40, 43], [40, 41, 44]],
}

PREFIXES = {
    "short": ["hello", "a b", "x"],
    # longer than the tiny Gemma's sliding window (16): the per-answer path, not tree attention
    "past-the-window": ["a b c d e f g h i j k l m n", "short one", "z"],
}


def test_trie_shares_prefixes():
    trie = AnswerTrie.build(ANSWER_SETS["shared-prefixes"])
    # distinct proper prefixes: (5), (5,9), (5,10), (5,10,11), (7)
    assert trie.num_nodes == 5 and trie.max_depth == 3
    assert trie.node_of[0].tolist() == [-1, 0, 1, -1] and trie.node_of[1].tolist() == [-1, 0, 1, -1]
    assert trie.node_of[4].tolist() == [-1, -1, -1, -1]  # single-token: predicted by the prefix alone
    assert trie.sees[3].tolist() == [True, False, True, True, False]  # (5,10,11) sees (5), (5,10), itself
    assert AnswerTrie.build([[1], [2]]).num_nodes == 0


@pytest.mark.parametrize("answers", list(ANSWER_SETS.values()), ids=list(ANSWER_SETS))
@pytest.mark.parametrize("texts", list(PREFIXES.values()), ids=list(PREFIXES))
def test_scores_match_one_forward_per_answer(lm, answers, texts):
    prefix = lm.embed_texts(texts)
    fast, slow = lm.score_answers(prefix, answers), lm.score_answers_full(prefix, answers)
    assert fast.token_mask.tolist() == slow.token_mask.tolist()
    assert torch.allclose(fast.token_logprobs, slow.token_logprobs, atol=1e-4)
    assert torch.equal(fast.logprobs.argmax(-1), slow.logprobs.argmax(-1))
    assert torch.equal(fast.mean_logprobs().argmax(-1), slow.mean_logprobs().argmax(-1))


@pytest.mark.parametrize("n_soft", [2, 20], ids=["tree-attention", "past-the-window"])
def test_gradients_into_soft_tokens_match_the_reference(lm, n_soft):
    answers = ANSWER_SETS["shared-prefixes"]
    torch.manual_seed(0)
    soft = torch.randn(3, n_soft, lm.hidden_size)
    grads = []
    for score in (lm.score_answers, lm.score_answers_full):
        leaf = soft.clone().requires_grad_(True)
        bos = torch.tensor(lm.bos_ids + lm.token_ids("q:"), dtype=torch.long)
        prefix = lm.compose([[bos, leaf[i, : n_soft - i]] for i in range(3)])
        labels = torch.tensor([0, 3, 5])
        torch.nn.functional.cross_entropy(score(prefix, answers).logprobs, labels).backward()
        grads.append(leaf.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


@pytest.mark.parametrize("answers", list(ANSWER_SETS.values()), ids=list(ANSWER_SETS))
def test_relative_scores_differ_by_one_constant_per_example(lm, answers):
    """`relative=True` skips the first position's normaliser: each row's scores move by one constant, so
    the argmax and the softmax over the answers are those of the exact log-probs."""
    prefix = lm.embed_texts(PREFIXES["short"])
    exact, relative = lm.score_answers(prefix, answers).logprobs, lm.score_answers(prefix, answers, relative=True).logprobs
    shift = relative - exact
    assert torch.allclose(shift, shift[:, :1].expand_as(shift), atol=1e-4)
    assert torch.equal(relative.argmax(-1), exact.argmax(-1))
    assert torch.allclose(relative.log_softmax(-1), exact.log_softmax(-1), atol=1e-4)


def test_answer_normaliser_is_a_softmax_over_the_trie(lm):
    """`normaliser="answers"`: each token normalised over its node's next tokens, so when no answer is a
    prefix of another the answers' probabilities sum to 1; on single-token answers it is the first-token
    softmax over the answer set."""
    prefix = lm.embed_texts(PREFIXES["short"])
    answers = [[5, 9, 11], [5, 9, 12], [5, 10, 11, 13], [6], [7, 8]]
    restricted = lm.score_answers(prefix, answers, normaliser="answers").logprobs
    assert torch.allclose(restricted.exp().sum(-1), torch.ones(3), atol=1e-5)
    single = [[5], [6], [7]]
    exact = lm.score_answers(prefix, single).logprobs
    assert torch.allclose(lm.score_answers(prefix, single, normaliser="answers").logprobs,
                          torch.log_softmax(exact, -1), atol=1e-5)
    with pytest.raises(LwError, match="unknown answer normaliser"):
        lm.score_answers(prefix, single, normaliser="top-k")


@pytest.mark.parametrize("answers", list(ANSWER_SETS.values()), ids=list(ANSWER_SETS))
@pytest.mark.parametrize("soft", [3, 14], ids=["tree-attention", "past-the-window"])
def test_a_shared_context_prefilled_once_scores_as_the_joined_input(lm, answers, soft):
    gen = torch.Generator().manual_seed(soft)
    context = lm.embed_texts(["a b c"])
    rest = lm.compose([[torch.randn(soft, lm.hidden_size, generator=gen), torch.tensor(lm.token_ids("x y"))]
                       for _ in range(3)])
    joined = lm.join(Embedded(context.embeds.expand(3, -1, -1), context.mask.expand(3, -1)), rest)
    prefilled = lm.prefill_context(context)
    expected = lm.score_answers(joined, answers).token_logprobs
    for _ in range(2):  # the cache is copied, never extended: a second call reads the same context
        assert torch.allclose(lm.score_answers(rest, answers, context=prefilled).token_logprobs, expected, atol=1e-4)
    with pytest.raises(LwError, match="equal lengths"):
        lm.score_answers(lm.embed_texts(["a", "b c d"]), answers, context=prefilled)
