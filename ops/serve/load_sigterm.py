"""A bounded load on a real `lw-serve` process, then SIGTERM in the middle of another load.

    uv run python ops/serve/load_sigterm.py [RUN_DIR] [--requests 1000] [--concurrency 32] [--backend hf]

1. `--requests` requests (one text each, rt-sentiment's test texts) at `--concurrency` to /v1/predict:
   answered / 503 / failed and requests/s (lw-bench serve's load loop), then the server's own counters.
2. A second load of 300 requests, each on its own connection; SIGTERM once the server has answered 64 of
   them and at least 8 more wait in its queue (so some are surely in flight). A request whose connection the server never accepted (refused after SIGTERM) was not in
   flight; one that connected and got no HTTP answer is lost. Prints the counts; exits 1 if any is lost.

Without RUN_DIR: a fresh seeded default bridge (the cost does not depend on the weights)."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from lw_bench.serve_load import predict_sender, run_level
from lw_serve.parity import fresh_bridge
from lw_serve.process import start
from lw_tasks import load_task


def metric(url: str, pattern: str) -> int:
    text = httpx.get(url + "/metrics", timeout=10).text
    return int(float(m.group(1))) if (m := re.search("^" + pattern + r" (\S+)", text, re.M)) else 0


def answered(url: str) -> int:
    return metric(url, r'lw_serve_requests_total\{code="200",endpoint="predict"\}')


def queued(url: str) -> int:
    return metric(url, "lw_serve_queue_items")


async def sigterm_load(process: subprocess.Popen, url: str, texts: list[str], total: int = 300,
                       concurrency: int = 32, after: int = 64) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    limit = asyncio.Semaphore(concurrency)
    base = answered(url)

    async def one(i: int) -> None:
        async with limit:
            try:  # a client per request: one connection each, so "never accepted" and "lost" differ
                async with httpx.AsyncClient(timeout=120) as client:
                    response = await client.post(url + "/v1/predict", json={"texts": [texts[i % len(texts)]]})
                outcomes[str(response.status_code)] += 1
            except httpx.ConnectError:
                outcomes["refused (not in flight)"] += 1
            except httpx.HTTPError as err:
                outcomes[f"lost ({type(err).__name__})"] += 1

    async def terminate() -> None:
        # once requests wait in the server's queue (accepted, not yet answered: in flight for sure), or at the
        # latest after 120 s (the signal is sent either way, so the loop always ends)
        deadline = time.monotonic() + 120
        while (answered(url) - base < after or queued(url) < 8) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        outcomes["in the queue at SIGTERM"] = queued(url)
        outcomes["answered before SIGTERM"] = answered(url) - base
        process.send_signal(signal.SIGTERM)

    await asyncio.gather(terminate(), *(one(i) for i in range(total)))
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--backend", default="hf")
    args = parser.parse_args()
    texts = [e.text for e in load_task("rt-sentiment").split("test")]
    with tempfile.TemporaryDirectory(prefix="lw-load-") as scratch:
        run = args.run or str(fresh_bridge("rt-sentiment", Path(scratch) / "bridge", seed=0))
        server = start(run, args=["--max-queue", "1024", "--receiver-backend", args.backend])
        process, url = server.process, server.url
        try:
            row = asyncio.run(run_level(predict_sender(url), texts, args.concurrency, args.requests, 3600, {}))
            row["server answered"] = answered(url)
            print(json.dumps({"load": row}), flush=True)
            outcomes = asyncio.run(sigterm_load(process, url, texts, concurrency=args.concurrency))
            code = process.wait(timeout=120)
        finally:
            server.stop()
    lost = sum(n for k, n in outcomes.items() if k.startswith("lost"))
    drained = outcomes["200"] - outcomes["answered before SIGTERM"]
    print(json.dumps({"sigterm": dict(outcomes), "answered after SIGTERM": drained, "lost": lost, "exit": code}),
          flush=True)
    sys.exit(1 if lost else 0)


if __name__ == "__main__":
    main()
