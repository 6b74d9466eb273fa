"""The vllm receiver backend against a small in-process server speaking vLLM's Completions API with
`prompt_embeds` (base64 `torch.save` tensors, top-k `logprobs`, `return_tokens_as_token_ids`), backed by
the tiny HF receiver: every answer rule scores as FrozenLM.score_answers does while the answer tokens
are in the top k, a token outside them is refused in one line, and a served bridge answers alike."""

import base64
import io

import pytest
import torch
from lw_core import Embedded, LwError
from lw_serve.engine import load_engine
from lw_serve.threaded import app_in_thread
from lw_serve.vllm_receiver import VllmReceiver, embeds_base64
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ANSWERS = [[40], [41, 42, 43], [41, 44], [45, 46]]


def fake_vllm(lm, max_logprobs: int, name: str = "receiver") -> Starlette:
    """vLLM's /v1/models and /v1/completions for prompt embeddings, computed by `lm` in this process."""

    def prompt_tensor(text: str) -> torch.Tensor:
        return torch.load(io.BytesIO(base64.b64decode(text)), weights_only=True)

    async def models(_request: Request):
        return JSONResponse({"object": "list", "data": [{"id": name, "object": "model"}]})

    async def completions(request: Request):
        body = await request.json()
        if body.get("logprobs") and body["logprobs"] > max_logprobs:
            return JSONResponse({"error": {"message": f"Requested sample logprobs of {body['logprobs']}, which is "
                                                      f"greater than max allowed: {max_logprobs}", "code": 400}}, 400)
        embeds = body["prompt_embeds"]
        choices = []
        for index, text in enumerate([embeds] if isinstance(embeds, str) else embeds):
            prompt = prompt_tensor(text).to(lm.dtype)
            with torch.no_grad():
                logprobs = lm.model(inputs_embeds=prompt[None]).logits[0, -1].float().log_softmax(-1)
                out = lm.generate_from(Embedded(prompt[None], torch.ones(1, len(prompt), dtype=torch.long)),
                                       body["max_tokens"])[0]
            choice = {"index": index, "text": out, "finish_reason": "length"}
            if body.get("logprobs"):
                top = logprobs.topk(body["logprobs"])
                token = f"token_id:{int(top.indices[0])}"
                choice["logprobs"] = {"tokens": [token], "token_logprobs": [float(top.values[0])],
                                      "top_logprobs": [{f"token_id:{int(i)}": float(v)
                                                        for i, v in zip(top.indices, top.values, strict=True)}]}
            choices.append(choice)
        return JSONResponse({"object": "text_completion", "model": body["model"], "choices": choices})

    return Starlette(routes=[Route("/v1/models", models), Route("/v1/completions", completions, methods=["POST"])])


@pytest.fixture(scope="module")
def lm(tiny_receiver):
    return tiny_receiver


@pytest.fixture(scope="module")
def vllm_url(lm):
    with app_in_thread(fake_vllm(lm, max_logprobs=lm.vocab_size)) as url:
        yield url


def prefixes(lm, lengths=(3, 7, 1)):
    gen = torch.Generator().manual_seed(sum(lengths))
    start = torch.tensor([lm.tokenizer.bos_token_id, *lm.token_ids("Review: ")])
    anchor = torch.tensor(lm.token_ids("\nAnswer:"))
    return lm.compose([[start, torch.randn(n, lm.hidden_size, generator=gen) * lm.embedding_rms(), anchor]
                       for n in lengths])


def test_the_prompt_embeds_codec_round_trips():
    tensor = torch.randn(5, 7)
    assert torch.equal(torch.load(io.BytesIO(base64.b64decode(embeds_base64(tensor))), weights_only=True), tensor)


@pytest.mark.parametrize("answers", [[[40], [41], [45]], [a[:2] for a in ANSWERS], ANSWERS],
                         ids=["first-token", "distinct-prefix", "full"])
def test_every_answer_rule_scores_as_the_hf_receiver_with_the_whole_vocabulary(lm, vllm_url, answers):
    backend = VllmReceiver(lm, vllm_url, logprobs=lm.vocab_size, max_rows=4)  # rows split across requests
    prefix = prefixes(lm)
    assert backend.model == "receiver"
    expected = lm.score_answers(prefix, answers).logprobs.float()
    assert torch.allclose(backend.score(prefix, answers), expected, atol=1e-4)


def test_an_answer_token_outside_the_top_k_is_refused_in_one_line(lm, vllm_url):
    prefix = prefixes(lm, (2,))
    with torch.no_grad():
        ranked = lm.model(inputs_embeds=prefix.embeds).logits[0, -1].argsort(descending=True).tolist()
    inside, outside = ranked[0], ranked[-1]
    backend = VllmReceiver(lm, vllm_url, logprobs=3)
    assert backend.score(prefix, [[inside]]).shape == (1, 1)
    with pytest.raises(LwError, match=rf"input 0: answer token {outside} .* not among the top 3 .*--max-logprobs"):
        backend.score(prefix, [[inside], [outside]])


def test_the_servers_own_errors_and_an_unreachable_server_are_one_line(lm):
    with (app_in_thread(fake_vllm(lm, max_logprobs=20)) as url,
          pytest.raises(LwError, match=r"answered 400: Requested sample logprobs of 50, .* max allowed: 20")):
        VllmReceiver(lm, url, logprobs=50).score(prefixes(lm, (1,)), [[40]])
    with pytest.raises(LwError, match=r"vLLM server http://127.0.0.1:9: ConnectError"):
        VllmReceiver(lm, "http://127.0.0.1:9")
    with pytest.raises(LwError, match=r"--vllm-logprobs must be >= 1, got 0"):
        VllmReceiver(lm, "http://127.0.0.1:9", logprobs=0)


def test_greedy_generation_comes_from_the_server(lm, vllm_url):
    prefix = prefixes(lm, (2, 5))
    assert VllmReceiver(lm, vllm_url).generate(prefix, 5) == lm.generate_from(prefix, 5)


def test_a_served_bridge_answers_alike_on_vllm_and_hf(run_dir, texts):
    hf = load_engine(run_dir, "pipeline", device="cpu")
    with app_in_thread(fake_vllm(hf.receiver, max_logprobs=hf.receiver.vocab_size)) as url:
        served = load_engine(run_dir, "pipeline", device="cpu", backend="vllm",
                             backend_options={"vllm_url": url, "vllm_logprobs": hf.receiver.vocab_size})
        assert served.backend.name == "vllm"
        expected, got = hf.predict(texts, {}), served.predict(texts, {})
    assert [a.answer for a in got] == [a.answer for a in expected]
    assert torch.allclose(torch.tensor([a.scores for a in got]), torch.tensor([a.scores for a in expected]), atol=1e-4)
    with pytest.raises(LwError, match=r"the vllm receiver backend needs --vllm-url"):
        load_engine(run_dir, "receiver", device="cpu", backend="vllm")
