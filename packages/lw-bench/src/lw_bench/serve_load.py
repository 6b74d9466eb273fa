"""`lw-bench serve`: a load generator over HTTP against `lw-serve` servers.

At each concurrency, `concurrency` clients send one text per request until `requests` requests are
sent or `seconds` have passed (whichever first), to `/v1/predict` of a pipeline server, to the split
pair (`/v1/encode` of a sender, its answer posted as it is to `/v1/decode` of a receiver) and to
`/v1/read` (the receiver reading the text itself, served the same way). Reported per
target and concurrency: answered, refused (503) and failed requests, requests/s, p50/p90/p99 latency,
and each server's peak memory; with the run's in-process batch throughput on the same texts, the ratio
served / in-process of the bridge's whole path at each concurrency.

Without URLs it starts the servers itself and records a run (lw_bench.serve_run); with URLs it measures
servers someone else started and prints the table only (their configuration is not known here)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from lw_core import LwError
from lw_core.options import DeviceOptions, RuntimeOptions, ScoringOptions, ThreadOptions, shared_field
from lw_serve.backends import BACKENDS
from lw_tasks.options import TaskOptions

from lw_bench.measure import percentiles

Send = Callable[[httpx.AsyncClient, str], Awaitable[int]]
logging.getLogger("httpx").setLevel(logging.WARNING)  # not one log line per request of a load


@dataclass
class ServeLoadConfig(TaskOptions, ThreadOptions):
    """The task options say whose test texts are sent; `--threads`: those of the in-process measurement
    and of the servers it starts."""

    url: str | None = field(default=None, metadata={"help": "a pipeline server (lw-serve RUN_DIR), e.g. http://127.0.0.1:8000"})
    sender_url: str | None = field(default=None, metadata={"help": "a sender server (lw-serve sender RUN_DIR)"})
    receiver_url: str | None = field(default=None, metadata={"help": "its receiver server (lw-serve receiver RUN_DIR)"})
    backend_url: list[str] = field(default_factory=list, metadata={
        "help": "more pipeline servers of the same run on other receiver backends (lw-serve RUN_DIR "
                "--receiver-backend llama-cpp): each measured as --url is, its targets named by its backend"})
    run: str | None = field(default=None, metadata={
        "help": "the served run dir: also measure its in-process batch throughput on the same texts; without "
                "URLs, the bridge the servers it starts serve (default: a fresh seeded default bridge)"})
    receiver_backends: list[str] = field(default_factory=lambda: ["hf"], metadata={
        "help": "without URLs: a pipeline server per receiver backend (hf, llama-cpp); the first also runs "
                "the split pair's receiver, the receiver reading the text and the in-process measurement"})
    concurrency: list[int] = field(default_factory=lambda: [1, 8, 32], metadata={"help": "concurrent clients"})
    requests: int = field(default=200, metadata={"help": "most requests per target and concurrency"})
    seconds: float = field(default=60.0, metadata={"help": "longest time per target and concurrency"})
    in_process_batch: int = field(default=32, metadata={"help": "batch size of the in-process measurement"})
    start_timeout: float = field(default=600.0, metadata={
        "help": "without URLs: longest wait for a started server to be ready"})
    api_key: str | None = field(default=None, metadata={"help": "bearer token (default: $LW_SERVE_API_KEY)"})
    json: bool = field(default=False, metadata={"help": "print JSON instead of a markdown table"})
    device: str = shared_field(DeviceOptions, "device")  # without URLs: the servers' and the in-process one's
    seed: int = shared_field(RuntimeOptions, "seed")  # the fresh bridge's
    output_dir: str | None = shared_field(ScoringOptions, "output_dir")

    @property
    def self_contained(self) -> bool:
        """No URLs: the servers are started here."""
        return not (self.url or self.sender_url or self.receiver_url or self.backend_url)

    def __post_init__(self):
        if self.self_contained:
            check_backends(self.receiver_backends)
            if self.api_key:
                raise LwError("lw-bench serve: --api-key is for servers you started (--url ...); "
                              "the servers it starts itself need none")
        else:
            if not self.url and not (self.sender_url and self.receiver_url):
                raise LwError("lw-bench serve: give --url, or --sender-url with --receiver-url (or all three); "
                              "or no URL at all to start the servers here")
            if bool(self.sender_url) != bool(self.receiver_url):
                raise LwError("lw-bench serve: the split pair needs both --sender-url and --receiver-url")
            if self.receiver_backends != ["hf"]:
                raise LwError("lw-bench serve: --receiver-backends is for the servers it starts (no URLs); "
                              "measure servers on other backends with --backend-url")
        if self.requests < 1 or self.seconds <= 0 or any(c < 1 for c in self.concurrency):
            raise LwError("lw-bench serve: --requests, --seconds and each --concurrency must be positive")
        super().__post_init__()


def check_backends(backends: Sequence[str]) -> None:
    """The receiver backends lw-bench can start a server on itself: one line for any other."""
    startable = [b for b in BACKENDS if b != "vllm"]
    if not backends or len(set(backends)) != len(backends):
        raise LwError(f"lw-bench serve: --receiver-backends takes distinct backends, got {' '.join(backends) or 'none'}")
    for backend in backends:
        if backend == "vllm":
            raise LwError("lw-bench serve: the vllm backend needs a vLLM server: start `lw-serve RUN_DIR "
                          "--receiver-backend vllm --vllm-url ...` yourself and measure it with --url")
        if backend not in startable:
            raise LwError(f"lw-bench serve: unknown receiver backend {backend!r}; known: {', '.join(startable)}")


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


def receiver_backend(url: str, headers: dict[str, str]) -> str:
    """The receiver backend a server runs, from its /v1/info."""
    try:
        return httpx.get(url + "/v1/info", headers=headers, timeout=30).json()["receiver_backend"]
    except (httpx.HTTPError, ValueError, KeyError) as err:
        raise LwError(f"lw-bench serve: {url}/v1/info gave no receiver backend ({err})") from err


@dataclass
class Target:
    """What one kind of request measures: its name, how one is sent, the servers behind it (name → URL,
    whose peak memory is reported) and whether it is the bridge's whole path on the first backend (then
    compared with the in-process batch throughput)."""

    name: str
    send: Send
    servers: dict[str, str]
    compared: bool = False


def backend_targets(suffix: Callable[[str], str], *, pipeline: str | None = None, sender: str | None = None,
                    receiver: str | None = None, reader: str | None = None, compared: bool = True,
                    names: dict[str, str] | None = None) -> list[Target]:
    """The targets of one receiver backend's servers: /v1/predict of `pipeline`, the split pair and
    /v1/read of `reader` (each where given); `suffix(url)` names the backend, `names` the servers."""
    name = (names or {}).get
    out = []
    if pipeline:
        out.append(Target(f"predict{suffix(pipeline)}", predict_sender(pipeline),
                          {name(pipeline, pipeline): pipeline}, compared))
    if sender and receiver:
        out.append(Target("sender → receiver", split_sender(sender, receiver),
                          {name(sender, sender): sender, name(receiver, receiver): receiver}, compared))
    if reader:
        out.append(Target(f"receiver reads the text{suffix(reader)}", read_sender(reader), {name(reader, reader): reader}))
    return out


def url_targets(config: ServeLoadConfig, headers: dict[str, str]) -> list[Target]:
    """The targets of servers someone else started (`--url`, `--sender-url` / `--receiver-url`, `--backend-url`)."""
    named = (lambda url: f" ({receiver_backend(url, headers)})") if config.backend_url else (lambda url: "")
    targets = backend_targets(named, pipeline=config.url, sender=config.sender_url, receiver=config.receiver_url,
                              reader=config.receiver_url or config.url)
    for url in config.backend_url:
        targets += backend_targets(named, pipeline=url, reader=url, compared=False)
    return targets


def measure(targets: Sequence[Target], texts: Sequence[str], config: ServeLoadConfig, headers: dict[str, str]
            ) -> tuple[list[dict[str, Any]], dict[str, float | None]]:
    """A row per target and concurrency, and each server's peak memory (MiB) after its targets ran."""
    rows: list[dict[str, Any]] = []
    peaks: dict[str, float | None] = {}
    for target in targets:
        for concurrency in config.concurrency:
            row = asyncio.run(run_level(target.send, texts, concurrency, config.requests, config.seconds, headers))
            rows.append({"target": target.name} | row)
        peaks |= {name: peak_memory_mib(url, headers) for name, url in target.servers.items()}
        for row in rows[-len(config.concurrency):]:
            row["peak MiB"] = " + ".join(str(peaks[name]) for name in target.servers)
    return rows, peaks


def in_process_throughput(run: str, texts: Sequence[str], batch: int, backend: str = "hf", device: str = "auto",
                          threads: int | None = None) -> float:
    """Examples/s of the run's whole pipeline in this process (what the server computes, without HTTP)."""
    from lw_serve import load_engine

    engine = load_engine(run, "pipeline", backend=backend, device=device,
                         backend_options={"threads": threads, "max_batch": batch})
    engine.predict(list(texts[:batch]), {})  # warm up
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        engine.predict(list(texts[i : i + batch]), {})
    return len(texts) / (time.perf_counter() - start)


def with_in_process(rows: list[dict[str, Any]], targets: Sequence[Target], texts: Sequence[str],
                    config: ServeLoadConfig, run: str, backend: str = "hf") -> list[dict[str, Any]]:
    """The rows, each compared target's with `served / in process` (its requests/s over the in-process
    examples/s: one text per request), then the in-process row."""
    sample = list(itertools.islice(itertools.cycle(texts), max(config.requests, config.in_process_batch)))
    in_process = in_process_throughput(run, sample, config.in_process_batch, backend, config.device,
                                       config.threads)
    compared = {t.name for t in targets if t.compared}
    for row in rows:
        if row["target"] in compared:
            row["served / in process"] = round(row["req/s"] / in_process, 2)
    return [*rows, {"target": f"in process (batch {config.in_process_batch})", "req/s": round(in_process, 2)}]


def bench_serve(config: ServeLoadConfig, texts: Sequence[str]) -> list[dict[str, Any]]:
    """Servers someone else started, measured (and the run's in-process throughput with `--run`); rows only."""
    key = config.api_key or os.environ.get("LW_SERVE_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    targets = url_targets(config, headers)
    rows, _ = measure(targets, texts, config, headers)
    return with_in_process(rows, targets, texts, config, config.run) if config.run else rows
