"""Dynamic batching for one model version.

Requests queue up; a batch is the oldest request plus the following compatible ones (same non-batch dims
and dtypes), up to ``max_batch_size`` rows. A batch runs when it is full or when its oldest request has
waited ``max_queue_delay``. Each request gets back its own rows of its own requested outputs. With
``eager_when_idle`` a request that finds the model idle (no batch running) runs at once instead of waiting.
The decision is :meth:`Batcher.plan`, a pure function of the queue, the running batches and a clock reading,
so tests drive it with a fake clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from serving.errors import InternalError, OverloadedError, UnavailableError

RunFn = Callable[[dict[str, np.ndarray], list[str]], Awaitable[dict[str, np.ndarray]]]


class BatcherClosedError(UnavailableError):
    """The model version is being drained; the caller should look the model up again."""


@dataclass
class BatchResult:
    outputs: dict[str, np.ndarray]
    queue_s: float
    compute_s: float
    batch_rows: int


@dataclass
class Pending:
    inputs: dict[str, np.ndarray]
    outputs: list[str]
    rows: int
    key: tuple
    enqueued: float
    future: asyncio.Future = field(repr=False)


@dataclass
class BatchStats:
    """Filled by the batcher for the metrics and the statistics extension."""

    on_batch: Callable[[int, float], None] | None = None  # (rows, compute seconds)
    on_depth: Callable[[int], None] | None = None  # queue depth after a change


def compat_key(inputs: dict[str, np.ndarray]) -> tuple:
    return tuple((name, arr.shape[1:], arr.dtype.str) for name, arr in sorted(inputs.items()))


class Batcher:
    def __init__(
        self,
        run: RunFn,
        *,
        max_batch_size: int,
        max_queue_delay_s: float,
        max_queue_size: int,
        max_concurrent_batches: int = 1,
        batchable: bool = True,
        eager_when_idle: bool = False,
        clock: Callable[[], float] = time.monotonic,
        stats: BatchStats | None = None,
    ) -> None:
        self._run = run
        self.max_batch_size = max_batch_size
        self.max_queue_delay_s = max_queue_delay_s
        self.max_queue_size = max_queue_size
        self.batchable = batchable
        self.eager_when_idle = eager_when_idle
        self._clock = clock
        self._stats = stats or BatchStats()
        self._queue: deque[Pending] = deque()
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(max_concurrent_batches)
        self._running: set[asyncio.Task] = set()
        self._closed = False
        self._loop_task: asyncio.Task | None = None

    @property
    def depth(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(self._loop())

    def submit(self, inputs: dict[str, np.ndarray], outputs: list[str], rows: int) -> asyncio.Future:
        """Queue one request; await the returned future for its :class:`BatchResult`.

        Raises:
            BatcherClosedError: the version is draining (look the model up again).
            OverloadedError: ``max_queue_size`` requests are already waiting.
        """
        if self._closed:
            raise BatcherClosedError("model version is being unloaded")
        if len(self._queue) >= self.max_queue_size:
            raise OverloadedError(
                f"queue full: {len(self._queue)} requests waiting (max_queue_size {self.max_queue_size})"
            )
        future = asyncio.get_running_loop().create_future()
        self._queue.append(Pending(inputs, outputs, rows, compat_key(inputs), self._clock(), future))
        self._changed()
        return future

    def _changed(self) -> None:
        self._wakeup.set()
        if self._stats.on_depth:
            self._stats.on_depth(len(self._queue))

    def plan(self, now: float) -> list[Pending] | float | None:
        """What to run now: a batch, seconds to wait before the oldest request is due, or None (empty)."""
        while self._queue and self._queue[0].future.done():  # timed out or cancelled while waiting
            self._queue.popleft()
        if not self._queue:
            return None
        head = self._queue[0]
        if not self.batchable or head.rows >= self.max_batch_size:
            return [head]
        batch, rows, full = [head], head.rows, False
        for item in list(self._queue)[1:]:
            if item.future.done() or item.key != head.key:
                continue
            if rows + item.rows > self.max_batch_size:
                full = True
                break
            batch.append(item)
            rows += item.rows
        if full or rows >= self.max_batch_size or now - head.enqueued >= self.max_queue_delay_s:
            return batch
        if self.eager_when_idle and not self._running:
            # Nothing is running, so no load is building up behind this request: waiting would only add
            # latency. Under load, batches are running and newcomers wait (up to the delay) to join.
            return batch
        return head.enqueued + self.max_queue_delay_s - now

    async def _loop(self) -> None:
        while True:
            await self._slots.acquire()
            batch = await self._next_batch()
            if batch is None:
                self._slots.release()
                return
            for item in batch:
                self._queue.remove(item)
            self._changed()
            task = asyncio.get_running_loop().create_task(self._run_batch(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _next_batch(self) -> list[Pending] | None:
        while True:
            decision = self.plan(self._clock())
            if isinstance(decision, list):
                return decision
            if decision is None and self._closed:
                return None
            self._wakeup.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), decision)

    async def _run_batch(self, batch: list[Pending]) -> None:
        try:
            started = self._clock()
            names = list(dict.fromkeys(n for item in batch for n in item.outputs))
            merged = batch[0].inputs if len(batch) == 1 else _concat([item.inputs for item in batch])
            try:
                result = await self._run(merged, names)
            except Exception as e:
                if len(batch) == 1:
                    _fail(batch, e)
                else:  # one request that breaks the model must not fail the others joined with it
                    await self._run_each(batch)
                return
            compute_s = self._clock() - started
            rows = sum(item.rows for item in batch)
            if self._stats.on_batch:
                self._stats.on_batch(rows, compute_s)
            self._split(batch, result, started, compute_s, rows)
        finally:
            self._slots.release()

    async def _run_each(self, batch: list[Pending]) -> None:
        """After a failed batch: run its requests one by one, so only the ones that fail alone get the error."""
        for item in batch:
            if item.future.done():
                continue
            started = self._clock()
            try:
                result = await self._run(item.inputs, item.outputs)
            except Exception as e:
                _fail([item], e)
                continue
            compute_s = self._clock() - started
            if self._stats.on_batch:
                self._stats.on_batch(item.rows, compute_s)
            self._split([item], result, started, compute_s, item.rows)

    def _split(
        self, batch: list[Pending], result: dict[str, np.ndarray], started: float, compute_s: float, rows: int
    ) -> None:
        if len(batch) > 1 and any(arr.shape[:1] != (rows,) for arr in result.values()):
            shapes = {n: list(a.shape) for n, a in result.items()}
            _fail(batch, InternalError(f"batched run of {rows} rows returned outputs {shapes}: not batch-aligned"))
            return
        offset = 0
        for item in batch:
            part = {n: (result[n] if len(batch) == 1 else result[n][offset : offset + item.rows]) for n in item.outputs}
            offset += item.rows
            if not item.future.done():
                item.future.set_result(BatchResult(part, started - item.enqueued, compute_s, rows))

    async def close(self) -> None:
        """Refuse new requests, finish the queued and running ones, then stop the loop."""
        self._closed = True
        self._wakeup.set()
        if self._loop_task is not None:
            await self._loop_task
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([p[name] for p in parts], axis=0) for name in parts[0]}


def _fail(batch: list[Pending], error: Exception) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(error)
