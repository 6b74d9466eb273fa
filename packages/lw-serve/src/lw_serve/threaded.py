"""A server in a background thread of this process (tests, notebooks, benchmarks): uvicorn on a free
loopback port, stopped (drained) when the block ends."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import uvicorn

from lw_serve.app import Limits, Server
from lw_serve.engine import Engine


@contextlib.contextmanager
def serve_in_thread(engine: Engine, role: str = "pipeline", limits: Limits | None = None,
                    api_key: str | None = None, host: str = "127.0.0.1") -> Iterator[str]:
    """Yields the server's base URL (`http://127.0.0.1:PORT`) once it accepts requests."""
    with app_in_thread(Server(engine, role, limits or Limits(), api_key).app(), host) as url:
        yield url


@contextlib.contextmanager
def app_in_thread(app, host: str = "127.0.0.1") -> Iterator[str]:
    """Any ASGI app on a free port of `host` in a background thread; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name="lw-serve-uvicorn", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn stopped before it started serving")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
