"""`lw-bench serve`: a load generator over HTTP against running `lw-serve` servers.

At each concurrency, `concurrency` clients send one text per request until `requests` requests are
sent or `seconds` have passed (whichever first), to `/v1/predict` of a pipeline server, to the split
pair (`/v1/encode` of a sender, its answer posted as it is to `/v1/decode` of a receiver) and to
`/v1/read` (the receiver reading the text itself, served the same way). Reported per
target and concurrency: answered, refused (503) and failed requests, requests/s, p50/p90/p99 latency,
and each server's peak memory; with `--run`, the bridge's in-process batch throughput on the same texts
and the ratio served / in-process."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from lw_core import LwError
from lw_core.options import ThreadOptions
from lw_tasks.options import TaskOptions

from lw_bench.measure import percentiles

Send = Callable[[httpx.AsyncClient, str], Awaitable[int]]


@dataclass
class ServeLoadConfig(TaskOptions, ThreadOptions):
    """The task options say whose test texts are sent; `--threads`: those of the in-process measurement."""

    url: str | None = field(default=None, metadata={"help": "a pipeline server (lw-serve RUN_DIR), e.g. http://127.0.0.1:8000"})
    sender_url: str | None = field(default=None, metadata={"help": "a sender server (lw-serve sender RUN_DIR)"})
    receiver_url: str | None = field(default=None, metadata={"help": "its receiver server (lw-serve receiver RUN_DIR)"})
    backend_url: list[str] = field(default_factory=list, metadata={
        "help": "more pipeline servers of the same run on other receiver backends (lw-serve RUN_DIR "
                "--receiver-backend llama-cpp): each measured as --url is, its targets named by its backend"})
    run: str | None = field(default=None, metadata={
        "help": "the served run dir: also measure its in-process batch throughput on the same texts"})
    concurrency: list[int] = field(default_factory=lambda: [1, 8, 32], metadata={"help": "concurrent clients"})
    requests: int = field(default=200, metadata={"help": "most requests per target and concurrency"})
    seconds: float = field(default=60.0, metadata={"help": "longest time per target and concurrency"})
    in_process_batch: int = field(default=32, metadata={"help": "batch size of the in-process measurement"})
    api_key: str | None = field(default=None, metadata={"help": "bearer token (default: $LW_SERVE_API_KEY)"})
    json: bool = field(default=False, metadata={"help": "print JSON instead of a markdown table"})

    def __post_init__(self):
        if not self.url and not (self.sender_url and self.receiver_url):
            raise LwError("lw-bench serve: give --url, or --sender-url with --receiver-url (or all three)")
        if bool(self.sender_url) != bool(self.receiver_url):
            raise LwError("lw-bench serve: the split pair needs both --sender-url and --receiver-url")
        if self.requests < 1 or self.seconds <= 0 or any(c < 1 for c in self.concurrency):
            raise LwError("lw-bench serve: --requests, --seconds and each --concurrency must be positive")
        super().__post_init__()


async def run_level(send: Send, texts: Sequence[str], concurrency: int, requests: int, seconds: float,
                    headers: dict[str, str]) -> dict[str, Any]:
    """`concurrency` clients sending until `requests` are sent or `seconds` pass; status counts
    (0: no HTTP answer at all) and latency percentiles of the answered ones."""
    latencies: list[float] = []
    codes: Counter[int] = Counter()
    numbers = itertools.count()
    deadline = time.monotonic() + seconds

    async def client_loop(client: httpx.AsyncClient) -> None:
        while (i := next(numbers)) < requests and time.monotonic() < deadline:
            start = time.perf_counter()
            try:
                code = await send(client, texts[i % len(texts)])
            except httpx.HTTPError:
                code = 0
            codes[code] += 1
            if code == 200:
                latencies.append(time.perf_counter() - start)

    async with httpx.AsyncClient(timeout=120, headers=headers,
                                 limits=httpx.Limits(max_connections=concurrency)) as client:
        start = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    row: dict[str, Any] = {"concurrency": concurrency, "sent": sum(codes.values()), "ok": codes[200],
                           "503": codes[503], "failed": sum(n for c, n in codes.items() if c not in (200, 503)),
                           "req/s": round(codes[200] / elapsed, 2)}
    if latencies:
        row |= {f"{k} ms": round(v * 1000, 1) for k, v in percentiles(latencies).items() if k != "mean"}
    return row


def predict_sender(url: str) -> Send:
    async def send(client: httpx.AsyncClient, text: str) -> int:
        return (await client.post(url + "/v1/predict", json={"texts": [text]})).status_code

    return send


def read_sender(url: str) -> Send:
    async def send(client: httpx.AsyncClient, text: str) -> int:
        return (await client.post(url + "/v1/read", json={"texts": [text]})).status_code

    return send


def split_sender(sender_url: str, receiver_url: str) -> Send:
    async def send(client: httpx.AsyncClient, text: str) -> int:
        encoded = await client.post(sender_url + "/v1/encode", json={"texts": [text]})
        if encoded.status_code != 200:
            return encoded.status_code
        return (await client.post(receiver_url + "/v1/decode", content=encoded.content,
                                  headers={"content-type": "application/json"})).status_code

    return send


def peak_memory_mib(url: str, headers: dict[str, str]) -> float | None:
    """The server's peak RSS from its /metrics, in MiB."""
    try:
        text = httpx.get(url + "/metrics", headers=headers, timeout=10).text
    except httpx.HTTPError:
        return None
    found = re.search(r"^lw_serve_peak_rss_bytes (\S+)$", text, re.MULTILINE)
    return round(float(found.group(1)) / 2**20, 1) if found else None


def in_process_throughput(run: str, texts: Sequence[str], batch: int) -> float:
    """Examples/s of the run's whole pipeline in this process (what the server computes, without HTTP)."""
    from lw_serve import load_engine

    engine = load_engine(run, "pipeline")
    engine.predict(list(texts[:batch]), {})  # warm up
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        engine.predict(list(texts[i : i + batch]), {})
    return len(texts) / (time.perf_counter() - start)


def receiver_backend(url: str, headers: dict[str, str]) -> str:
    """The receiver backend a server runs, from its /v1/info."""
    try:
        return httpx.get(url + "/v1/info", headers=headers, timeout=30).json()["receiver_backend"]
    except (httpx.HTTPError, ValueError, KeyError) as err:
        raise LwError(f"lw-bench serve: {url}/v1/info gave no receiver backend ({err})") from err


def bench_serve(config: ServeLoadConfig, texts: Sequence[str]) -> list[dict[str, Any]]:
    key = config.api_key or os.environ.get("LW_SERVE_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    targets: list[tuple[str, Send, list[str]]] = []
    named = (lambda url: f" ({receiver_backend(url, headers)})") if config.backend_url else (lambda url: "")
    if config.url:
        targets.append((f"predict{named(config.url)}", predict_sender(config.url), [config.url]))
    if config.sender_url and config.receiver_url:
        targets.append(("sender → receiver", split_sender(config.sender_url, config.receiver_url),
                        [config.sender_url, config.receiver_url]))
    reader = config.receiver_url or config.url
    targets.append((f"receiver reads the text{named(reader)}", read_sender(reader), [reader]))  # type: ignore[arg-type, list-item]
    compared = len(targets)  # the in-process ratio is of these (the HF receiver, as in process)
    for url in config.backend_url:
        targets += [(f"predict{named(url)}", predict_sender(url), [url]),
                    (f"receiver reads the text{named(url)}", read_sender(url), [url])]
    rows = []
    for name, send, urls in targets:
        for concurrency in config.concurrency:
            row = asyncio.run(run_level(send, texts, concurrency, config.requests, config.seconds, headers))
            rows.append({"target": name} | row)
        memory = [peak_memory_mib(u, headers) for u in urls]
        for row in rows[-len(config.concurrency):]:
            row["peak MiB"] = " + ".join(str(m) for m in memory)
    if config.run:
        top = rows[: compared * len(config.concurrency)]
        served = max(r["req/s"] for r in top if r["concurrency"] == max(config.concurrency) and "text" not in r["target"])
        sample = list(itertools.islice(itertools.cycle(texts), max(config.requests, config.in_process_batch)))
        in_process = in_process_throughput(config.run, sample, config.in_process_batch)
        rows.append({"target": f"in process (batch {config.in_process_batch})", "req/s": round(in_process, 2),
                     "served / in process": round(served / in_process, 2)})
    return rows
