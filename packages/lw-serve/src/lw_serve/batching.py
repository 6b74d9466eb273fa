"""Dynamic batching: requests (each a list of items) wait in a bounded queue until `max_batch` items
are queued or the oldest has waited `max_wait_s`; one worker thread runs each batch. A request that
would overflow the queue is refused at once (`Overloaded`) instead of growing memory. `close` stops
taking requests and finishes every queued one: none is lost or answered twice."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

Work = Callable[[list[Any], dict[str, float]], list[Any]]
"""Runs one batch of items: one result per item; fills the dict with seconds per stage."""


class Overloaded(Exception):
    """The queue is full (or the server is draining): answer 503 with Retry-After."""


@dataclass
class Done:
    results: list[Any]
    timings: dict[str, float]
    """Seconds: `queue` (this request's wait) and each stage of the batch it ran in."""
    batch_items: int


@dataclass
class _Pending:
    items: list[Any]
    future: asyncio.Future
    queued_at: float = field(default_factory=time.perf_counter)


class Batcher:
    def __init__(self, work: Work, executor: ThreadPoolExecutor, *, max_batch: int = 32, max_wait_s: float = 0.005,
                 max_queue: int = 256, on_batch: Callable[[int, float], None] | None = None):
        self.work, self.executor = work, executor
        self.max_batch, self.max_wait_s, self.max_queue = max_batch, max_wait_s, max_queue
        self.on_batch = on_batch
        self._queue: deque[_Pending] = deque()
        self.queued_items = 0
        self.closing = False
        self._arrived = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def close(self) -> None:
        """Refuse new requests; return once every queued request is answered."""
        self.closing = True
        self._arrived.set()
        if self._task is not None:
            await self._task

    async def submit(self, items: list[Any]) -> Done:
        if self.closing:
            raise Overloaded("the server is shutting down")
        if self.queued_items + len(items) > self.max_queue:
            raise Overloaded(f"queue full ({self.queued_items} items waiting, at most {self.max_queue})")
        pending = _Pending(items, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        self.queued_items += len(items)
        self._arrived.set()
        return await pending.future

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue or not self.closing:
            if not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            deadline = self._queue[0].queued_at + self.max_wait_s
            while self.queued_items < self.max_batch and not self.closing:
                timeout = deadline - time.perf_counter()
                if timeout <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), timeout)
                except TimeoutError:
                    break
            batch: list[_Pending] = []
            size = 0
            while self._queue and (not batch or size + len(self._queue[0].items) <= self.max_batch):
                batch.append(self._queue.popleft())
                size += len(batch[-1].items)
            self.queued_items -= size
            await self._run(loop, batch)

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        items = [item for pending in batch for item in pending.items]
        started = time.perf_counter()
        stages: dict[str, float] = {}
        try:
            results = await loop.run_in_executor(self.executor, self.work, items, stages)
        except Exception as err:  # one bad batch fails its requests, never the server
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(err)
            return
        if self.on_batch:
            self.on_batch(len(items), time.perf_counter() - started)
        offset = 0
        for pending in batch:
            part = results[offset : offset + len(pending.items)]
            offset += len(pending.items)
            if not pending.future.done():  # a client that went away cancelled its future
                timings = {"queue": started - pending.queued_at, **stages}
                pending.future.set_result(Done(part, timings, len(items)))
