"""Dynamic batching for one model version.

Requests queue up; a batch is the oldest request plus the following compatible ones (same non-batch dims
and dtypes), up to ``max_batch_size`` rows. A batch runs when it is full or when its oldest request has
waited ``max_queue_delay``. Each request gets back its own rows of its own requested outputs. With
``eager_when_idle`` a request that finds the model idle (no batch running) runs at once instead of waiting.
The decision is :meth:`Batcher.plan`, a pure function of the queue, the running batches and a clock reading,
so tests drive it with a fake clock. There is no batcher task: arrivals, finished batches and one timer for
the oldest request's deadline call the dispatcher, so a lone request on an idle model starts at once.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from modelpress.serving.errors import InternalError, OverloadedError, UnavailableError

RunFn = Callable[[dict[str, np.ndarray], list[str]], Awaitable[dict[str, np.ndarray]]]


class BatcherClosedError(UnavailableError):
    """The model version is being drained; the caller should look the model up again."""


@dataclass
class BatchResult:
    outputs: dict[str, np.ndarray]
    queue_s: float
    compute_s: float
    batch_rows: int


@dataclass(eq=False)  # compared by identity: its fields hold numpy arrays
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
        self.max_concurrent_batches = max_concurrent_batches
        self._queue: deque[Pending] = deque()
        self._running: set[asyncio.Future] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._started = False
        self._closed = False
        self._drained: asyncio.Event | None = None

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def running(self) -> int:
        """Batches in flight."""
        return len(self._running)

    def start(self) -> None:
        """Begin dispatching on the running loop (until then, :meth:`submit` only queues)."""
        if not self._started:
            self._started = True
            self._dispatch()

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
        self._depth_changed()
        if self._started:
            self._dispatch()
        return future

    def _depth_changed(self) -> None:
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
        for item in itertools.islice(self._queue, 1, None):
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

    def _dispatch(self) -> None:
        """Start every batch that is due while a slot is free; else arm one timer for when the oldest is due.

        Called when a request arrives, when a batch finishes and when the timer fires, so an idle model
        starts a lone request within the same event-loop step as its arrival (no batcher task to wake).
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while len(self._running) < self.max_concurrent_batches:
            # Closing: nothing more will join, so what is queued runs now rather than after its delay.
            decision = self.plan(math.inf if self._closed else self._clock())
            if decision is None:
                break
            if not isinstance(decision, list):
                self._timer = asyncio.get_running_loop().call_later(decision, self._dispatch)
                break
            self._start_batch(decision)
        if self._closed and not self._queue and not self._running and self._drained is not None:
            self._drained.set()

    def _start_batch(self, batch: list[Pending]) -> None:
        self._take(batch)
        started = self._clock()
        names = list(dict.fromkeys(n for item in batch for n in item.outputs))
        merged = batch[0].inputs if len(batch) == 1 else _concat([item.inputs for item in batch])
        try:
            running = asyncio.ensure_future(self._run(merged, names))
        except Exception as e:  # the run could not even start (e.g. the compute pool is shut down)
            _fail(batch, e)
            return
        self._running.add(running)
        running.add_done_callback(functools.partial(self._batch_done, batch, started))

    def _take(self, batch: list[Pending]) -> None:
        """Remove the batch from the queue: usually its head, in order; otherwise by identity."""
        if all(self._queue[i] is item for i, item in enumerate(batch)):
            for _ in batch:
                self._queue.popleft()
        else:
            chosen = {id(item) for item in batch}
            self._queue = deque(p for p in self._queue if id(p) not in chosen)
        self._depth_changed()

    def _batch_done(self, batch: list[Pending], started: float, running: asyncio.Future) -> None:
        self._running.discard(running)
        if running.cancelled():
            _fail(batch, InternalError("the batch was cancelled"))
        elif (error := running.exception()) is not None:
            if len(batch) > 1:  # one request that breaks the model must not fail the others joined with it
                self._retry_alone(batch)
                return
            _fail(batch, error)
        else:
            self._deliver(batch, running.result(), started)
        self._dispatch()

    def _retry_alone(self, batch: list[Pending]) -> None:
        """Re-run a failed batch request by request; it holds a batch slot until the last one is done."""
        retry = asyncio.ensure_future(self._run_each(batch))
        self._running.add(retry)
        retry.add_done_callback(functools.partial(self._retry_done, batch))

    def _retry_done(self, batch: list[Pending], retry: asyncio.Future) -> None:
        self._running.discard(retry)
        if retry.cancelled() or retry.exception() is not None:  # no request may be left waiting forever
            _fail(batch, InternalError("re-running the failed batch request by request did not finish"))
        self._dispatch()

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
            self._deliver([item], result, started)

    def _deliver(self, batch: list[Pending], result: dict[str, np.ndarray], started: float) -> None:
        """Count a finished run in the statistics and hand each request its rows."""
        compute_s = self._clock() - started
        rows = sum(item.rows for item in batch)
        if self._stats.on_batch:
            self._stats.on_batch(rows, compute_s)
        self._split(batch, result, started, compute_s, rows)

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
        """Refuse new requests, run what is queued without waiting for more, finish the running batches."""
        self._closed = True
        if not self._started:
            return
        self._drained = asyncio.Event()
        self._dispatch()
        await self._drained.wait()


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([p[name] for p in parts], axis=0) for name in parts[0]}


def _fail(batch: list[Pending], error: Exception) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(error)
