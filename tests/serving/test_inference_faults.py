"""A model that fails inside ONNX Runtime on some inputs: only those requests fail, and the batcher goes on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from tests.serving.conftest import client_for
from tests.serving.models import FRAGILE_FEATURES, FRAGILE_TRIGGER, publish_fragile

pytestmark = pytest.mark.anyio


@pytest.fixture
def fragile_repo(tmp_path: Path) -> Path:
    publish_fragile(tmp_path)
    return tmp_path


def body(x: np.ndarray) -> dict:
    return {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}


def good(i: int) -> np.ndarray:
    return np.full((1, FRAGILE_FEATURES), float(i), dtype=np.float32)


BAD = np.full((1, FRAGILE_FEATURES), FRAGILE_TRIGGER * 10, dtype=np.float32)


def metric(text: str, outcome: str) -> float:
    prefix = f'modelpress_requests_total{{model="fragile",outcome="{outcome}",protocol="v2",version="1"}} '
    return next((float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix)), 0.0)


async def test_runtime_error_fails_only_that_request(fragile_repo):
    # A 50 ms queue delay, also when idle, so concurrent requests really share one session.run.
    async with client_for(fragile_repo, max_queue_delay_us=50_000, wait_when_idle=True) as c:
        r = await c.post("/v2/models/fragile/infer", json=body(BAD))
        assert r.status_code == 500
        error = r.json()["error"]
        assert error.startswith("model 'fragile' failed to run: Fail:")
        assert "Reshape" in error

        # The bad request batched with good ones: each good one still gets its own right answer.
        xs = [good(i) for i in range(6)]
        answers = await asyncio.gather(
            *(c.post("/v2/models/fragile/infer", json=body(x)) for x in [*xs[:3], BAD, *xs[3:]])
        )
        statuses = [a.status_code for a in answers]
        assert statuses == [200, 200, 200, 500, 200, 200, 200]
        for x, a in zip(xs, [*answers[:3], *answers[4:]], strict=True):
            np.testing.assert_allclose(np.array(a.json()["outputs"][0]["data"]).reshape(1, -1), x * 2)

        # Not wedged: later requests succeed, nothing is left queued.
        later = await asyncio.gather(*(c.post("/v2/models/fragile/infer", json=body(good(i))) for i in range(10)))
        assert [a.status_code for a in later] == [200] * 10
        metrics = (await c.get("/metrics")).text
        assert metric(metrics, "server_error") == 2
        assert metric(metrics, "success") == 16
        assert 'modelpress_queue_depth{model="fragile",version="1"} 0.0' in metrics
        stats = (await c.get("/v2/models/fragile/stats")).json()["model_stats"][0]["inference_stats"]
        assert stats["fail"]["count"] == 2
        assert stats["success"]["count"] == 16
        assert (await c.get("/v2/health/ready")).status_code == 200


async def test_v1_runtime_error_is_500_with_a_message(fragile_repo):
    async with client_for(fragile_repo) as c:
        r = await c.post("/v1/models/fragile:predict", json={"instances": BAD.tolist()})
        assert r.status_code == 500
        assert "failed to run" in r.json()["error"]
        ok = await c.post("/v1/models/fragile:predict", json={"instances": good(3).tolist()})
        assert ok.status_code == 200
        assert ok.json()["predictions"] == [[6.0] * FRAGILE_FEATURES]
