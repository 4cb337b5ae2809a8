"""Graceful shutdown on SIGTERM.

Readiness goes false and new inferences get 503 first, in-flight requests finish (bounded by
``drain_timeout_s``), then uvicorn's own shutdown runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("serving")


class Drain:
    """Waits for in-flight requests on SIGTERM; ``inflight`` is kept by ``guards.py`` for every transport."""

    def __init__(self, timeout_s: float, grace_s: float, on_start: Callable[[], None]) -> None:
        self.timeout_s = timeout_s
        self.grace_s = grace_s
        self.on_start = on_start
        self.inflight = 0
        self.started = False
        self._previous: Any = None
        self._task: asyncio.Task | None = None

    async def wait(self) -> None:
        """Mark the server draining, then wait until nothing is in flight (and the grace time has passed)."""
        self.started = True
        self.on_start()
        began = time.monotonic()
        log.info("draining: %d request(s) in flight", self.inflight)
        while time.monotonic() - began < self.timeout_s:
            if self.inflight == 0 and time.monotonic() - began >= self.grace_s:
                break
            await asyncio.sleep(0.02)
        else:
            log.warning("drain timeout after %ss with %d request(s) still in flight", self.timeout_s, self.inflight)

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Put our SIGTERM handler in front of the server's (uvicorn's); only possible on the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._previous = signal.getsignal(signal.SIGTERM)

        def on_term(sig: int, frame: Any) -> None:
            if self.started:  # a second SIGTERM: stop waiting
                self._forward(sig, frame)
                return
            loop.call_soon_threadsafe(self._start, sig, frame)

        signal.signal(signal.SIGTERM, on_term)

    def _start(self, sig: int, frame: Any) -> None:
        async def run() -> None:
            await self.wait()
            self._forward(sig, frame)

        self._task = asyncio.get_running_loop().create_task(run())

    def _forward(self, sig: int, frame: Any) -> None:
        previous = self._previous
        if callable(previous):
            previous(sig, frame)
        else:
            self.uninstall()
            os.kill(os.getpid(), sig)

    def uninstall(self) -> None:
        if self._previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
