"""The HTTP face of an `Engine` (Starlette, served by uvicorn): `/v1/predict` (texts → answers),
`/v1/encode` (texts → wire messages), `/v1/decode` (wire messages → answers), `/v1/read` (the receiver
reading the texts themselves: the path a bridge replaces), as the role allows; plus
`/v1/info`, `/healthz`, `/readyz`, `/metrics` and, for the whole pipeline, the playground page at `/`.
Every error is a JSON object `{"error": "<one line>"}`; no traceback reaches a client."""

from __future__ import annotations

import base64
import contextlib
import logging
import math
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

import torch
from lw_core import LwError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from lw_serve import payloads
from lw_serve.batching import Batcher, Done, Overloaded
from lw_serve.engine import Engine
from lw_serve.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger("lw_serve")

ENCODE_RESPONSE_FIELDS = {"message_bytes", "text_bytes", "timings_ms", "batch_items"}
"""Fields of an encode response that a decode request may carry along (ignored): a sender's answer can
be posted to a receiver as it is."""


@dataclass
class Limits:
    max_batch: int = field(default=32, metadata={"help": "most texts or messages in one batch, and in one request"})
    max_wait_ms: float = field(default=5.0, metadata={"help": "longest a request waits for others to fill its batch"})
    max_queue: int = field(default=256, metadata={"help": "most items waiting; beyond it requests get 503"})
    max_body_bytes: int = field(default=1 << 20, metadata={"help": "largest request body accepted (413 beyond)"})
    max_text_chars: int = field(default=20_000, metadata={"help": "longest text accepted (422 beyond)"})

    def __post_init__(self):
        for name in ("max_batch", "max_queue", "max_body_bytes", "max_text_chars"):
            if getattr(self, name) < 1:
                raise LwError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise LwError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        if self.max_queue < self.max_batch:
            raise LwError(f"max_queue ({self.max_queue}) must hold at least one full batch ({self.max_batch})")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise payloads.BadRequest(413, f"body of {declared} bytes is over the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise payloads.BadRequest(413, f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _ms(timings: dict[str, float]) -> dict[str, float]:
    return {k: round(v * 1000, 3) for k, v in timings.items()}


class Server:
    """The routes of one engine, their batchers (one worker thread for all) and their metrics."""

    def __init__(self, engine: Engine, role: str, limits: Limits, api_key: str | None = None):
        self.engine, self.role, self.limits, self.api_key = engine, role, limits, api_key
        self.metrics = Metrics()
        self.ready = False
        self.executor: ThreadPoolExecutor | None = None
        self.batchers: dict[str, Batcher] = {}
        self.metrics.gauge("lw_serve_queue_items", lambda: sum(b.queued_items for b in self.batchers.values()))
        self.metrics.gauge("lw_serve_ready", lambda: float(self.ready))

    # ---- endpoints by role -----------------------------------------------------------------------
    @property
    def endpoints(self) -> dict[str, Callable[[list[Any], dict[str, float]], list[Any]]]:
        e = self.engine
        out: dict[str, Callable[[list[Any], dict[str, float]], list[Any]]] = {}
        if e.has_sender and e.has_receiver:
            out["predict"] = e.predict
        if e.has_sender:
            out["encode"] = e.encode
        if e.has_receiver and not e.bridge.config.receiver_reads_text:
            out["decode"] = lambda items, timings: e.decode(torch.stack(items), timings)
        if e.has_receiver:
            out["read"] = e.read
        return out

    @contextlib.asynccontextmanager
    async def lifespan(self, _app):
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="lw-serve-worker")
        lim = self.limits
        for name, work in self.endpoints.items():
            self.batchers[name] = Batcher(work, self.executor, max_batch=lim.max_batch, max_wait_s=lim.max_wait_ms / 1000,
                                          max_queue=lim.max_queue, on_batch=self.metrics.batch)
            self.batchers[name].start()
        self.ready = True
        try:
            yield
        finally:  # SIGTERM: uvicorn has stopped accepting and answered what was in flight; drain what is left
            self.ready = False
            for batcher in self.batchers.values():
                await batcher.close()
            self.executor.shutdown(wait=True)

    def app(self) -> Starlette:
        routes = [Route("/healthz", self.healthz), Route("/readyz", self.readyz), Route("/metrics", self.render_metrics),
                  Route("/v1/info", self.info)]
        handlers = {"predict": self.predict, "encode": self.encode, "decode": self.decode, "read": self.read}
        routes += [Route(f"/v1/{name}", handlers[name], methods=["POST"]) for name in self.endpoints]
        if "predict" in self.endpoints:
            routes.append(Route("/", self.playground))
        return Starlette(routes=routes, lifespan=self.lifespan,
                         exception_handlers={HTTPException: self._http_error, Exception: self._internal_error})

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", dict(exc.headers or {}))

    async def _internal_error(self, request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s", request.url.path)
        return _error(500, f"internal error: {type(exc).__name__}")

    # ---- plain GETs ------------------------------------------------------------------------------
    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        if not self.ready:
            return _error(503, "not ready: the server is starting or draining", {"Retry-After": "1"})
        return JSONResponse({"status": "ready"})

    async def render_metrics(self, request: Request) -> Response:
        return PlainTextResponse(self.metrics.render(), media_type=CONTENT_TYPE)

    async def info(self, request: Request) -> Response:
        e, c = self.engine, self.engine.bridge.config
        return JSONResponse({
            "role": self.role, "endpoints": sorted(self.endpoints), "bridge": e.fingerprint, "task": c.task,
            "answers": e.answer_names, "wire": e.wire.name, "group_size": e.wire.group_size,
            "shape": list(e.message_shape), "message_bytes": e.message_bytes,
            "receiver_backend": e.backend.name if e.backend else None,
            "limits": {k: getattr(self.limits, k) for k in ("max_batch", "max_wait_ms", "max_queue", "max_body_bytes",
                                                             "max_text_chars")}})

    async def playground(self, request: Request) -> Response:
        return HTMLResponse((files("lw_serve") / "playground.html").read_text())

    # ---- the work --------------------------------------------------------------------------------
    async def _serve(self, request: Request, name: str, fields: set[str],
                     parse: Callable[[dict[str, Any]], list[Any]],
                     respond: Callable[[dict[str, Any], list[Any], Done], dict[str, Any]]) -> Response:
        start = time.perf_counter()
        response = await self._answer(request, name, fields, parse, respond)
        self.metrics.add("lw_serve_requests_total", endpoint=name, code=str(response.status_code))
        self.metrics.add("lw_serve_request_seconds_sum", time.perf_counter() - start, endpoint=name)
        self.metrics.add("lw_serve_request_seconds_count", endpoint=name)
        return response

    async def _answer(self, request, name, fields, parse, respond) -> Response:
        if self.api_key is not None:
            given = request.headers.get("authorization", "")
            if not secrets.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
                return _error(401, "missing or wrong bearer token (send Authorization: Bearer <key>)",
                              {"WWW-Authenticate": "Bearer"})
        try:
            payload = payloads.json_object(await _body(request, self.limits.max_body_bytes),
                                           request.headers.get("content-type"), fields)
            items = parse(payload)
            done = await self.batchers[name].submit(items)
        except payloads.BadRequest as err:
            return _error(err.status, str(err))
        except LwError as err:
            return _error(422, str(err))
        except Overloaded as err:
            batcher = self.batchers[name]
            wait = max(1, math.ceil(batcher.queued_items / batcher.max_batch * batcher.max_wait_s + 0.5))
            return _error(503, f"overloaded: {err}; retry later", {"Retry-After": str(wait)})
        self.metrics.add("lw_serve_items_total", len(items), endpoint=name)
        return JSONResponse(respond(payload, items, done))

    def _texts(self, payload: dict[str, Any]) -> list[str]:
        return payloads.texts(payload, self.limits.max_batch, self.limits.max_text_chars)

    def _answers(self, done: Done) -> dict[str, Any]:
        return {"answers": [a.answer for a in done.results], "scores": [a.scores for a in done.results],
                "answer_names": self.engine.answer_names}

    def _sizes(self, texts: list[str], done: Done) -> dict[str, Any]:
        return {"wire": self.engine.wire.name, "message_bytes": self.engine.message_bytes,
                "text_bytes": [len(t.encode()) for t in texts], "timings_ms": _ms(done.timings),
                "batch_items": done.batch_items}

    async def predict(self, request: Request) -> Response:
        return await self._serve(request, "predict", {"texts"}, self._texts,
                                 lambda _p, texts, done: self._answers(done) | self._sizes(texts, done))

    async def read(self, request: Request) -> Response:
        return await self._serve(request, "read", {"texts"}, self._texts,
                                 lambda _p, texts, done: self._answers(done) | {"text_bytes": [len(t.encode()) for t in texts],
                                                                                "timings_ms": _ms(done.timings),
                                                                                "batch_items": done.batch_items})

    async def encode(self, request: Request) -> Response:
        e = self.engine

        def respond(_payload, texts, done):
            return {"bridge": e.fingerprint, "group_size": e.wire.group_size, "shape": list(e.message_shape),
                    "messages": [base64.b64encode(m).decode() for m in done.results]} | self._sizes(texts, done)

        return await self._serve(request, "encode", {"texts"}, self._texts, respond)

    async def decode(self, request: Request) -> Response:
        e = self.engine

        def parse(payload: dict[str, Any]) -> list[torch.Tensor]:
            payloads.expect(payload, "bridge", e.fingerprint, "bridge fingerprint")
            payloads.expect(payload, "wire", e.wire.name, "wire format")
            if "group_size" in payload:
                payloads.expect(payload, "group_size", e.wire.group_size, "wire group size")
            payloads.expect(payload, "shape", list(e.message_shape), "message shape")
            return list(e.unpack(payloads.message_payloads(payload, self.limits.max_batch)))

        return await self._serve(request, "decode", {"bridge", "wire", "group_size", "shape", "messages"}
                                 | ENCODE_RESPONSE_FIELDS, parse,
                                 lambda _p, _items, done: self._answers(done) | {"timings_ms": _ms(done.timings),
                                                                                 "batch_items": done.batch_items})
