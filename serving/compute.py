"""The bounded thread pool that runs blocking calls (``session.run``) off the event loop.

``loop.run_in_executor`` costs about twice as much per call as it needs to at batch 1: a
``concurrent.futures.Future``, the executor's work item and thread bookkeeping, then ``wrap_future`` chaining
the two futures with callbacks on both sides. Here a job is one tuple on a ``SimpleQueue``; a worker thread
runs it and hands the outcome back to the loop with one ``call_soon_threadsafe``. The threads are started once
and their number is fixed, so the pool stays bounded like the executor it replaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class ComputePoolClosedError(RuntimeError):
    """A job was submitted after :meth:`ComputePool.shutdown`."""


class ComputePool:
    """``threads`` worker threads taking jobs in order; :meth:`submit` returns a future of the loop it is called on.

    Args:
        threads: how many jobs can run at once (at least 1).
        name: prefix of the worker threads' names (seen in py-spy and thread dumps).
    """

    def __init__(self, threads: int, name: str = "modelpress-run") -> None:
        if threads < 1:
            raise ValueError(f"a compute pool needs at least one thread, got {threads}")
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(threads)]
        for thread in self._threads:
            thread.start()

    @property
    def threads(self) -> int:
        return len(self._threads)

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run ``fn(*args)`` on a worker thread; the returned future resolves on the calling loop.

        Raises:
            ComputePoolClosedError: the pool was shut down.
        """
        if self._closed:
            raise ComputePoolClosedError("the compute pool is shut down")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put((loop, future, fn, args))
        return future

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            loop, future, fn, args = job
            try:
                outcome, error = fn(*args), None
            except BaseException as e:  # handed to the awaiting request, whatever it is
                outcome, error = None, e
            # A loop closed while the job ran raises RuntimeError: nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, future, outcome, error)

    def shutdown(self, wait: bool = False) -> None:
        """Let the queued jobs finish, then stop the threads (joined when ``wait``)."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._jobs.put(None)
        if wait:
            for thread in self._threads:
                thread.join()


def _resolve(future: asyncio.Future, outcome: Any, error: BaseException | None) -> None:
    if future.done():  # cancelled while it ran
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(outcome)
