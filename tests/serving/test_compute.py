"""The compute pool: blocking calls off the event loop, bounded, results and errors back on the loop."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from modelpress.serving.compute import ComputePool, ComputePoolClosedError

pytestmark = pytest.mark.anyio


async def test_runs_off_the_loop_thread_and_returns_the_result():
    pool = ComputePool(2)
    try:
        loop_thread = threading.get_ident()
        ident, value = await pool.submit(lambda x: (threading.get_ident(), x * 2), 21)
        assert value == 42
        assert ident != loop_thread
    finally:
        pool.shutdown(wait=True)


async def test_an_exception_reaches_the_awaiting_caller():
    pool = ComputePool(1)

    def boom() -> None:
        raise ValueError("bad input")

    try:
        with pytest.raises(ValueError, match="bad input"):
            await pool.submit(boom)
        assert await pool.submit(int, "7") == 7  # the worker survived
    finally:
        pool.shutdown(wait=True)


async def test_never_more_jobs_at_once_than_threads():
    pool = ComputePool(2)
    lock, active, peak = threading.Lock(), [0], [0]

    def job() -> None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.01)
        with lock:
            active[0] -= 1

    try:
        await asyncio.gather(*(pool.submit(job) for _ in range(12)))
    finally:
        pool.shutdown(wait=True)
    assert peak[0] == 2


async def test_the_loop_stays_free_while_a_job_blocks():
    pool = ComputePool(1)
    try:
        slow = pool.submit(time.sleep, 0.6)
        started = time.perf_counter()
        await asyncio.sleep(0.01)  # would take 0.6 s if the job blocked the loop
        assert time.perf_counter() - started < 0.45  # room for a busy CI box to wake the loop late
        await slow
    finally:
        pool.shutdown(wait=True)


async def test_a_cancelled_wait_does_not_break_the_pool():
    pool = ComputePool(1)
    try:
        waiting = pool.submit(time.sleep, 0.05)
        waiting.cancel()
        assert await pool.submit(str, 5) == "5"
    finally:
        pool.shutdown(wait=True)


async def test_shutdown_finishes_queued_jobs_then_refuses_new_ones():
    pool = ComputePool(1)
    done = []
    futures = [pool.submit(done.append, i) for i in range(3)]
    pool.shutdown(wait=False)
    await asyncio.gather(*futures)
    assert done == [0, 1, 2]
    with pytest.raises(ComputePoolClosedError):
        pool.submit(print)


def test_needs_at_least_one_thread():
    with pytest.raises(ValueError, match="at least one thread"):
        ComputePool(0)
