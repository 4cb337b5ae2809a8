"""Dynamic batching: the decision with a controllable clock, and correctness under concurrency."""

from __future__ import annotations

import asyncio

import numpy as np
import onnxruntime as ort
import pytest

from modelpress.serving.batching.batcher import Batcher, BatcherClosedError
from modelpress.serving.errors import OverloadedError
from tests.serving.conftest import client_for
from tests.serving.models import FEATURES

pytestmark = pytest.mark.anyio


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def rows(n: int, width: int = 4) -> dict[str, np.ndarray]:
    return {"x": np.ones((n, width), dtype=np.float32)}


async def _never_run(inputs, outputs):
    raise AssertionError("plan() tests never run a batch")


def make(clock: FakeClock, **kw: object) -> Batcher:
    opts = {"max_batch_size": 8, "max_queue_delay_s": 0.010, "max_queue_size": 4} | kw
    return Batcher(_never_run, clock=clock, **opts)


async def test_plan_waits_for_the_delay_then_runs():
    clock = FakeClock()
    b = make(clock)
    assert b.plan(clock()) is None
    b.submit(rows(2), ["y"], 2)
    wait = b.plan(clock())
    assert wait == pytest.approx(0.010)
    clock.now += 0.004
    b.submit(rows(3), ["y"], 3)
    assert b.plan(clock()) == pytest.approx(0.006)  # the oldest request sets the deadline
    clock.now += 0.006
    batch = b.plan(clock())
    assert [p.rows for p in batch] == [2, 3]


async def test_plan_runs_at_once_when_full_and_respects_the_row_cap():
    clock = FakeClock()
    b = make(clock)
    for n in (3, 4, 2):
        b.submit(rows(n), ["y"], n)
    batch = b.plan(clock())  # 3 + 4 = 7, + 2 would exceed 8 rows: run now without waiting
    assert [p.rows for p in batch] == [3, 4]


async def test_plan_does_not_join_incompatible_shapes_or_skips_cancelled():
    clock = FakeClock()
    b = make(clock, max_queue_delay_s=0.0)
    first = b.submit(rows(1, width=4), ["y"], 1)
    b.submit(rows(1, width=5), ["y"], 1)
    b.submit(rows(2, width=4), ["y"], 2)
    assert [(p.rows, p.inputs["x"].shape[1]) for p in b.plan(clock())] == [(1, 4), (2, 4)]
    first.cancel()  # e.g. its request timed out
    assert [p.inputs["x"].shape[1] for p in b.plan(clock())] == [5]


async def test_idle_model_runs_a_lone_request_at_once_but_waits_under_load():
    clock = FakeClock()
    b = make(clock, eager_when_idle=True)
    b.submit(rows(1), ["y"], 1)
    assert [p.rows for p in b.plan(clock())] == [1]  # nothing running: no reason to wait
    b._running.add(object())  # a batch in flight: load is building up, so newcomers wait to join
    assert b.plan(clock()) == pytest.approx(0.010)


async def test_oversized_and_unbatchable_requests_run_alone():
    clock = FakeClock()
    b = make(clock)
    b.submit(rows(20), ["y"], 20)
    b.submit(rows(1), ["y"], 1)
    assert [p.rows for p in b.plan(clock())] == [20]
    u = make(clock, batchable=False)
    u.submit(rows(1), ["y"], 1)
    u.submit(rows(1), ["y"], 1)
    assert len(u.plan(clock())) == 1


async def test_full_queue_is_overloaded_with_retry_after():
    clock = FakeClock()
    b = make(clock)
    for _ in range(4):
        b.submit(rows(1), ["y"], 1)
    with pytest.raises(OverloadedError) as info:
        b.submit(rows(1), ["y"], 1)
    assert info.value.status == 503
    assert info.value.headers["Retry-After"] == "1"
    assert "max_queue_size 4" in info.value.message


async def test_results_split_back_per_request_with_own_outputs():
    calls = []

    async def run(inputs, outputs):
        calls.append((inputs["x"].shape[0], list(outputs)))
        x = inputs["x"]
        return {"sum": x.sum(axis=1, keepdims=True), "double": x * 2}

    b = Batcher(run, max_batch_size=16, max_queue_delay_s=0.05, max_queue_size=16)
    b.start()
    futures = [
        b.submit({"x": np.full((n, 2), float(i), dtype=np.float32)}, outs, n)
        for i, (n, outs) in enumerate([(1, ["sum"]), (3, ["double"]), (2, ["sum", "double"])])
    ]
    results = await asyncio.gather(*futures)
    await b.close()
    assert calls == [(6, ["sum", "double"])]  # one run for all three
    assert list(results[0].outputs) == ["sum"]
    np.testing.assert_array_equal(results[0].outputs["sum"], [[0.0]])
    assert list(results[1].outputs) == ["double"]
    np.testing.assert_array_equal(results[1].outputs["double"], np.full((3, 2), 2.0))
    np.testing.assert_array_equal(results[2].outputs["sum"], [[4.0], [4.0]])
    assert all(r.batch_rows == 6 for r in results)


async def test_a_failing_run_fails_only_its_batch_and_the_batcher_goes_on():
    async def run(inputs, outputs):
        if (inputs["x"] < 0).any():
            raise ValueError("boom")
        return {"y": inputs["x"]}

    b = Batcher(run, max_batch_size=4, max_queue_delay_s=0.0, max_queue_size=8)
    b.start()
    bad = b.submit({"x": -np.ones((1, 1))}, ["y"], 1)
    with pytest.raises(ValueError, match="boom"):
        await bad
    good = await b.submit({"x": np.ones((1, 1))}, ["y"], 1)
    assert good.outputs["y"].tolist() == [[1.0]]
    await b.close()


async def test_concurrent_requests_are_batched_and_match_unbatched(repo):
    """Many concurrent single/multi-row requests: answers equal a direct ORT run of each request alone."""
    session = ort.InferenceSession(str(repo / "digits" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(7)
    requests = [rng.standard_normal((int(rng.integers(1, 4)), FEATURES)).astype(np.float32) for _ in range(40)]
    async with client_for(repo, max_queue_delay_us=20_000, max_batch_size=32) as c:

        async def one(x: np.ndarray) -> np.ndarray:
            body = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.tolist()}]}
            r = await c.post("/v2/models/digits/infer", json=body)
            assert r.status_code == 200, r.text
            out = r.json()["outputs"][0]
            return np.array(out["data"], dtype=np.float32).reshape(out["shape"])

        answers = await asyncio.gather(*(one(x) for x in requests))
        stats = (await c.get("/v2/models/digits/stats")).json()["model_stats"][0]
    for x, got in zip(requests, answers, strict=True):
        (want,) = session.run(None, {"input": x})
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert stats["inference_count"] == sum(len(x) for x in requests)
    assert stats["execution_count"] < len(requests)  # requests really were joined


async def test_queue_full_answers_503_with_retry_after(repo):
    body = {"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": [0.0] * FEATURES}]}
    # A long delay and a huge batch keep requests queued; the queue holds 2.
    slow = {"max_queue_delay_us": 300_000, "max_batch_size": 1000, "wait_when_idle": True}
    async with client_for(repo, max_queue_size=2, **slow) as c:
        answers = await asyncio.gather(*(c.post("/v2/models/digits/infer", json=body) for _ in range(5)))
    codes = sorted(r.status_code for r in answers)
    assert codes.count(200) >= 2
    rejected = [r for r in answers if r.status_code == 503]
    assert rejected, codes
    assert all(r.headers["Retry-After"] == "1" and "queue full" in r.json()["error"] for r in rejected)


async def test_request_timeout_is_504(repo):
    body = {"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": [0.0] * FEATURES}]}
    slow = {"max_queue_delay_us": 2_000_000, "max_batch_size": 1000, "wait_when_idle": True}
    async with client_for(repo, request_timeout_s=0.05, **slow) as c:
        r = await c.post("/v2/models/digits/infer", json=body)
        assert r.status_code == 504
        assert "request_timeout_s=0.05" in r.json()["error"]


async def test_client_timeout_parameter_shortens_the_wait(repo):
    x = [0.0] * FEATURES
    body = {"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": x}]}
    slow = {"max_queue_delay_us": 2_000_000, "max_batch_size": 1000, "wait_when_idle": True}
    async with client_for(repo, **slow) as c:
        r = await c.post("/v2/models/digits/infer", json=body | {"parameters": {"timeout": 50_000}})
        assert r.status_code == 504
        assert "timeout of 50000 us" in r.json()["error"]
        r = await c.post("/v2/models/digits/infer", json=body | {"parameters": {"timeout": "soon"}})
        assert r.status_code == 400
        assert "parameters.timeout must be a positive integer of microseconds" in r.json()["error"]


async def test_a_lone_request_on_an_idle_model_starts_within_submit():
    """No batcher task to wake: the run is handed over before submit returns (what concurrency 1 sees)."""
    started = []

    def run(inputs, outputs):
        started.append(inputs["x"].shape[0])
        future = asyncio.get_running_loop().create_future()
        future.set_result({"y": inputs["x"]})
        return future

    b = Batcher(run, max_batch_size=8, max_queue_delay_s=10.0, max_queue_size=8, eager_when_idle=True)
    b.start()
    pending = b.submit(rows(2), ["y"], 2)
    assert started == [2]  # before any await: no wait for the 10 s delay, no extra loop step
    assert b.depth == 0
    assert (await pending).outputs["y"].shape == (2, 4)
    await b.close()


async def test_a_waiting_batch_runs_when_its_delay_expires():
    calls = []

    async def run(inputs, outputs):
        calls.append(inputs["x"].shape[0])
        return {"y": inputs["x"]}

    b = Batcher(run, max_batch_size=64, max_queue_delay_s=0.03, max_queue_size=8)
    b.start()
    t0 = asyncio.get_running_loop().time()
    first = b.submit(rows(1), ["y"], 1)
    second = b.submit(rows(2), ["y"], 2)
    await asyncio.gather(first, second)
    assert asyncio.get_running_loop().time() - t0 >= 0.025  # waited for the delay (the timer), then ran once
    assert calls == [3]
    await b.close()


async def test_concurrent_batches_never_exceed_the_limit_and_results_stay_per_request():
    active, peak = [0], [0]

    async def run(inputs, outputs):
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        await asyncio.sleep(0.005)
        active[0] -= 1
        return {"y": inputs["x"] * 10}

    b = Batcher(run, max_batch_size=2, max_queue_delay_s=0.0, max_queue_size=64, max_concurrent_batches=2)
    b.start()
    futures = [b.submit({"x": np.full((1, 1), float(i))}, ["y"], 1) for i in range(20)]
    results = await asyncio.gather(*futures)
    await b.close()
    assert peak[0] == 2
    assert [r.outputs["y"].item() for r in results] == [10.0 * i for i in range(20)]


async def test_close_runs_what_is_queued_without_waiting_for_the_delay():
    async def run(inputs, outputs):
        return {"y": inputs["x"]}

    b = Batcher(run, max_batch_size=64, max_queue_delay_s=30.0, max_queue_size=8)
    b.start()
    queued = b.submit(rows(1), ["y"], 1)
    await asyncio.wait_for(b.close(), 2)  # a 30 s delay would time this out
    assert (await queued).batch_rows == 1
    with pytest.raises(BatcherClosedError):
        b.submit(rows(1), ["y"], 1)


async def test_a_batch_skipping_an_incompatible_request_leaves_it_queued():
    """The batch is not a prefix of the queue here: the skipped request must stay, in order."""
    clock = FakeClock()
    b = make(clock, max_queue_delay_s=0.0)
    b.submit(rows(1, width=4), ["y"], 1)
    other = b.submit(rows(1, width=5), ["y"], 1)
    b.submit(rows(1, width=4), ["y"], 1)
    b._take(b.plan(clock()))
    assert b.depth == 1
    assert b._queue[0].future is other
