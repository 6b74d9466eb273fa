"""The receiver on a vLLM server started with `--enable-prompt-embeds`: each input's embeddings (BOS,
anchors and soft tokens, exactly the HF receiver's) go in as `prompt_embeds` of the Completions API
(`torch.save` of a [n, d] tensor, base64), several inputs per request.

What it can score. vLLM returns log-probabilities only for the top `logprobs` tokens of each generated
position (at most the server's `--max-logprobs`, 20 by default), and none for positions inside prompt
embeddings. An answer token's log-probability is read at the position after the input and after the
answer's own earlier tokens (sent as their embeddings, one request row per distinct answer prefix), so
every answer rule (`first-token`: one row per input; `distinct-prefix` and `full`: one per distinct
prefix) is scored exactly — the same full-vocabulary log-probability FrozenLM.score_answers sums — as
long as each answer token is among the top `logprobs` where it is read. A token outside them has no
exact score: that input is refused with one line naming the token and the fix (`--max-logprobs` and
`--vllm-logprobs` up to the vocabulary). vLLM V1 returns the model's raw log-probabilities (before
temperature or penalties), which is what is compared here."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import httpx
import torch
from lw_core import Embedded, FrozenLM, LwError

TOKEN_ID = "token_id:"
"""How vLLM names a token with `return_tokens_as_token_ids` (no ambiguity between token strings)."""


def embeds_base64(embeds: torch.Tensor) -> str:
    """A [n, d] tensor as vLLM's `prompt_embeds` reads it: `torch.save` bytes, base64."""
    buffer = io.BytesIO()
    torch.save(embeds.detach().cpu().contiguous(), buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class VllmReceiver:
    """Completions on a vLLM server at `url` serving the receiver's weights as `model` (the server's
    `--served-model-name`; default: the first model it lists). `logprobs` top tokens are asked for at
    each scored position; `max_rows` inputs (or input + answer-prefix rows) go in one request."""

    name = "vllm"

    def __init__(self, lm: FrozenLM, url: str, *, model: str | None = None, logprobs: int = 20,
                 max_rows: int = 32, timeout: float = 120.0, dtype: torch.dtype = torch.float32):
        if logprobs < 1:
            raise LwError(f"--vllm-logprobs must be >= 1, got {logprobs}")
        self.lm, self.url, self.logprobs, self.max_rows, self.dtype = lm, url.rstrip("/"), logprobs, max_rows, dtype
        self.client = httpx.Client(base_url=self.url, timeout=timeout)
        self.model = model or self._served_model()

    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        try:
            response = self.client.request(method, path, json=body)
        except httpx.HTTPError as err:
            raise LwError(f"vLLM server {self.url}: {type(err).__name__}: {err}") from err
        if response.status_code != 200:
            raise LwError(f"vLLM server {self.url}{path} answered {response.status_code}: {error_line(response)}")
        return response.json()

    def _served_model(self) -> str:
        models = self._request("GET", "/v1/models").get("data") or []
        if not models:
            raise LwError(f"vLLM server {self.url} serves no model")
        return models[0]["id"]

    def _complete(self, rows: Sequence[torch.Tensor], max_tokens: int, logprobs: int | None) -> list[dict]:
        """One completion choice per row of embeddings [n, d], in order, `max_rows` rows per request."""
        choices: list[dict] = []
        for start in range(0, len(rows), self.max_rows):
            part = rows[start : start + self.max_rows]
            body = {"model": self.model, "prompt_embeds": [embeds_base64(r.to(self.dtype)) for r in part],
                    "max_tokens": max_tokens, "temperature": 0.0, "return_tokens_as_token_ids": True}
            if logprobs is not None:
                body["logprobs"] = logprobs
            got = sorted(self._request("POST", "/v1/completions", body)["choices"], key=lambda c: c["index"])
            if len(got) != len(part):
                raise LwError(f"vLLM server {self.url} answered {len(got)} choices for {len(part)} prompts")
            choices.extend(got)
        return choices

    @torch.no_grad()
    def score(self, prefix: Embedded, answer_ids: Sequence[Sequence[int]]) -> torch.Tensor:
        prefixes = sorted({tuple(a[:j]) for a in answer_ids for j in range(len(a))})
        steps = {p: self.lm.embed(torch.tensor([p], device=self.lm.device))[0] if p else None for p in prefixes}
        rows, keys = [], []
        for b, n in enumerate(prefix.lengths.tolist()):
            base = prefix.embeds[b, :n]
            for p in prefixes:
                rows.append(base if steps[p] is None else torch.cat([base, steps[p].to(base.dtype)]))
                keys.append((b, p))
        top = {key: top_logprobs(choice) for key, choice in zip(keys, self._complete(rows, 1, self.logprobs),
                                                                 strict=True)}
        scores = torch.zeros(len(prefix.lengths), len(answer_ids))
        for b in range(len(prefix.lengths)):
            for a, answer in enumerate(answer_ids):
                for j, token in enumerate(answer):
                    found = top[(b, tuple(answer[:j]))].get(token)
                    if found is None:
                        raise LwError(
                            f"input {b}: answer token {token} ({self.lm.tokenizer.decode([token])!r}) is not among "
                            f"the top {self.logprobs} log-probabilities vLLM returned, so it has no exact score: "
                            f"start vLLM with --max-logprobs N and pass --vllm-logprobs N (N up to the "
                            f"vocabulary, {self.lm.vocab_size})")
                    scores[b, a] += found
        return scores

    @torch.no_grad()
    def generate(self, prefix: Embedded, max_new_tokens: int) -> list[str]:
        rows = [prefix.embeds[b, :n] for b, n in enumerate(prefix.lengths.tolist())]
        return [c["text"] for c in self._complete(rows, max_new_tokens, None)]


def top_logprobs(choice: dict) -> dict[int, float]:
    """{token id: log-probability} at a choice's first generated position."""
    positions = (choice.get("logprobs") or {}).get("top_logprobs") or [None]
    if not positions[0]:
        raise LwError("the vLLM server returned no log-probabilities (is it vLLM with --enable-prompt-embeds?)")
    out = {}
    for token, logprob in positions[0].items():
        if not token.startswith(TOKEN_ID):
            raise LwError(f"the vLLM server named a token {token!r}, not {TOKEN_ID}N: it ignored "
                          f"return_tokens_as_token_ids (vLLM too old)")
        out[int(token[len(TOKEN_ID):])] = float(logprob)
    return out


def error_line(response: httpx.Response) -> str:
    """vLLM's error message (`{"error": {"message": ...}}` or `{"message": ...}`) on one line."""
    try:
        body = response.json()
        error = body.get("error", body)
        message = error.get("message", error) if isinstance(error, dict) else error
    except ValueError:
        message = response.text
    return " ".join(str(message).split())[:300]
