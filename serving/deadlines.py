"""Request timeouts with one event-loop timer for every waiting request, instead of one timer each.

A request waiting for its batch result is registered with its deadline and removed when the result comes;
one timer, armed for the earliest deadline, fails the futures that are due with :class:`RequestTimeoutError`.
A request whose deadline is later than the armed timer (the usual case: every request gets the same
``request_timeout_s``) costs a dict insert and a delete, not a timer handle created and cancelled.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from modelpress.serving.errors import RequestTimeoutError


@dataclass(frozen=True, slots=True)
class Deadline:
    """When a waiting request is due, and what its 504 says."""

    when: float  # on the loop's clock
    message: str


class Deadlines:
    """The waiting requests of one event loop and the one timer that expires them."""

    def __init__(self) -> None:
        self._waiting: dict[asyncio.Future, Deadline] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for = math.inf

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, future: asyncio.Future, timeout_s: float, message: str) -> None:
        """Fail ``future`` with a 504 carrying ``message`` unless it is done (or discarded) within ``timeout_s``."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or a new loop (tests): the old loop's timer and futures are dead
            self._loop, self._timer, self._armed_for = loop, None, math.inf
            self._waiting.clear()
        when = loop.time() + timeout_s
        self._waiting[future] = Deadline(when, message)
        if when < self._armed_for:
            self._arm(loop, when)

    def discard(self, future: asyncio.Future) -> None:
        """The request has its result (or gave up): forget its deadline. The timer stays; it re-arms itself."""
        self._waiting.pop(future, None)

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(when, self._expire_due, loop)
        self._armed_for = when

    def _expire_due(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:  # a timer of a loop we no longer serve
            return
        self._timer, self._armed_for = None, math.inf
        now = loop.time()
        due = [f for f, d in self._waiting.items() if d.when <= now]
        for future in due:
            deadline = self._waiting.pop(future)
            if not future.done():
                future.set_exception(RequestTimeoutError(deadline.message))
        if self._waiting:
            self._arm(loop, min(d.when for d in self._waiting.values()))
