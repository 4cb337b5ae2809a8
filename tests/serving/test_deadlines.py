"""One timer for every waiting request: due futures fail with a 504, answered ones are forgotten."""

from __future__ import annotations

import asyncio

import pytest

from modelpress.serving.deadlines import Deadlines
from modelpress.serving.errors import RequestTimeoutError

pytestmark = pytest.mark.anyio


async def test_a_future_past_its_deadline_fails_with_the_message():
    deadlines = Deadlines()
    future = asyncio.get_running_loop().create_future()
    deadlines.add(future, 0.01, "no result within 10 ms")
    with pytest.raises(RequestTimeoutError, match="no result within 10 ms"):
        await asyncio.wait_for(future, 1)
    assert len(deadlines) == 0


async def test_an_answered_future_is_forgotten_and_never_failed():
    deadlines = Deadlines()
    loop = asyncio.get_running_loop()
    answered = loop.create_future()
    deadlines.add(answered, 0.01, "late")
    answered.set_result("ok")
    deadlines.discard(answered)
    assert len(deadlines) == 0  # nothing held (or its result) until the deadline
    await asyncio.sleep(0.03)
    assert answered.result() == "ok"


async def test_one_timer_serves_requests_with_later_deadlines():
    """The usual case: the same timeout for all, so each later request finds the timer already armed."""
    deadlines = Deadlines()
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(5)]
    deadlines.add(futures[0], 0.02, "f0")
    timer = deadlines._timer
    for i, f in enumerate(futures[1:], start=1):
        deadlines.add(f, 0.02 + i * 0.01, f"f{i}")
        assert deadlines._timer is timer  # no new timer handle per request
    futures[2].set_result("answered")
    deadlines.discard(futures[2])
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert [str(r) for r in results] == ["f0", "f1", "answered", "f3", "f4"]
    assert len(deadlines) == 0
    assert deadlines._timer is None


async def test_a_shorter_deadline_rearms_the_timer_earlier():
    deadlines = Deadlines()
    loop = asyncio.get_running_loop()
    slow, quick = loop.create_future(), loop.create_future()
    deadlines.add(slow, 30.0, "slow")
    deadlines.add(quick, 0.01, "quick")  # a client's shorter parameters.timeout
    started = loop.time()
    with pytest.raises(RequestTimeoutError, match="quick"):
        await asyncio.wait_for(quick, 1)
    assert loop.time() - started < 1
    assert not slow.done()
    assert len(deadlines) == 1
    assert deadlines._timer is not None
    deadlines.discard(slow)


def test_a_new_event_loop_gets_its_own_timer():
    """An app served by one loop, then another (tests do that): the old loop's timer is not reused."""
    deadlines = Deadlines()

    async def one() -> None:
        future = asyncio.get_running_loop().create_future()
        deadlines.add(future, 0.01, "expired")
        with pytest.raises(RequestTimeoutError):
            await future

    async def park() -> None:  # leaves a deadline behind in the first loop
        deadlines.add(asyncio.get_running_loop().create_future(), 60.0, "parked")

    asyncio.run(park())
    asyncio.run(one())
    assert len(deadlines) == 0  # the first loop's parked future went with its loop
