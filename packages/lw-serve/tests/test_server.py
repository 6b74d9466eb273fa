"""Real servers on loopback: uvicorn in a thread for curl, concurrency and overload (one engine for all),
and an `lw-serve` process for SIGTERM, which must answer every request already in flight."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from lw_serve import Limits, load_engine
from lw_serve.threaded import serve_in_thread


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """`lw-serve RUN_DIR` in its own process on a free loopback port, once ready."""

    def __init__(self, run_dir, *flags):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lw_serve.cli", str(run_dir), "--port", str(self.port), "--device", "cpu",
             "--threads", "1", *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=os.environ | {"PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 300  # a loaded 2-core CI machine imports torch slowly
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"lw-serve exited {self.process.returncode}: {self.process.stderr.read()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError("lw-serve did not become ready")

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def engine(run_dir):
    return load_engine(run_dir, "pipeline", device="cpu")


def served(engine, **limits):
    return serve_in_thread(engine, "pipeline", Limits(**limits))


async def _many(url, bodies, concurrency):
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        async def one(body):
            async with limit:
                return await client.post(url, json=body)

        return await asyncio.gather(*(one(b) for b in bodies))


def test_a_curl_gets_the_answer_on_loopback(engine):
    with served(engine) as url:
        out = subprocess.run(["curl", "-s", "-X", "POST", url + "/v1/predict", "-H", "Content-Type: application/json",
                              "-d", '{"texts": ["a wonderful film"]}'], capture_output=True, text=True, check=True)
    assert '"answers":["' in out.stdout and '"message_bytes":34' in out.stdout


def test_no_request_is_lost_or_answered_twice_under_concurrency(engine):
    bodies = [{"texts": [f"review {i}: the film was fine"]} for i in range(200)]
    with served(engine, max_batch=16) as url:
        responses = asyncio.run(_many(url + "/v1/predict", bodies, 32))
        metrics = httpx.get(url + "/metrics").text
    assert [r.status_code for r in responses] == [200] * 200
    assert all(len(r.json()["answers"]) == 1 for r in responses)
    assert 'lw_serve_requests_total{code="200",endpoint="predict"} 200' in metrics
    assert "lw_serve_batch_items_sum 200" in metrics


def test_overload_answers_503_with_retry_after_and_the_server_survives(engine):
    bodies = [{"texts": ["a long enough review of a film " * 20]} for _ in range(40)]
    with served(engine, max_batch=1, max_queue=2, max_wait_ms=0) as url:
        responses = asyncio.run(_many(url + "/v1/predict", bodies, 40))
        after = httpx.post(url + "/v1/predict", json={"texts": ["after the storm"]})
    codes = [r.status_code for r in responses]
    assert set(codes) == {200, 503} and len(codes) == 40
    refused = [r for r in responses if r.status_code == 503]
    assert all(int(r.headers["Retry-After"]) >= 1 and r.json()["error"].startswith("overloaded: queue full")
               for r in refused)
    assert after.status_code == 200


def test_sigterm_answers_every_request_in_flight(run_dir):
    server = Process(run_dir, "--max-wait-ms", "5000", "--max-batch", "64")

    async def scenario():
        async with httpx.AsyncClient(timeout=60) as client:
            requests = [asyncio.create_task(client.post(server.url + "/v1/predict", json={"texts": [f"text {i}"]}))
                        for i in range(20)]
            while "lw_serve_queue_items 20" not in (await client.get(server.url + "/metrics")).text:
                await asyncio.sleep(0.05)  # until all 20 wait in the batching queue
            server.process.send_signal(signal.SIGTERM)
            return await asyncio.gather(*requests)

    try:
        responses = asyncio.run(scenario())
    finally:
        server.stop()
    assert [r.status_code for r in responses] == [200] * 20
    assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once drained
