"""Live figures over the last minute from the metrics registry, on a clock the test moves."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from modelpress.serving.metrics import Metrics
from modelpress.serving.ui.live import WINDOW_S, Histogram, LiveFigures


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _observe(metrics: Metrics, seconds: float, count: int, outcome: str = "success") -> None:
    for _ in range(count):
        metrics.request_duration.labels("m", "1", "v2", outcome).observe(seconds)
        metrics.requests.labels("m", "1", "v2", outcome).inc()
        metrics.queue_duration.labels("m", "1").observe(seconds / 10)


def test_quantiles_interpolate_inside_the_bucket_like_histogram_quantile() -> None:
    hist = Histogram({0.01: 50.0, 0.1: 100.0, float("inf"): 100.0}, count=100.0, total=3.0)
    assert hist.quantile(0.5) == pytest.approx(0.01)
    assert hist.quantile(0.75) == pytest.approx(0.01 + 0.09 * 0.5)
    assert Histogram({0.1: 0.0, float("inf"): 4.0}, count=4.0).quantile(0.99) == pytest.approx(0.1)
    assert Histogram().quantile(0.5) is None


def test_figures_cover_the_last_minute_only() -> None:
    metrics = Metrics(CollectorRegistry(), (0.001, 0.01, 0.1, 1.0), process=False, gpu=False)
    clock = Clock()
    live = LiveFigures(metrics, clock)
    _observe(metrics, 0.5, 30)  # slow requests, early
    clock.now += 30
    first = live.figures()["models"][0]
    assert first["requests"] == 30
    assert first["requests_per_s"] == pytest.approx(1.0)
    assert 0.1 * 1000 < first["p50_ms"] <= 1000
    clock.now += WINDOW_S + 1  # a minute later: the slow ones are out of the window
    _observe(metrics, 0.005, 10)
    _observe(metrics, 0.005, 2, outcome="client_error")
    figures = live.figures()
    later = figures["models"][0]
    assert figures["window_s"] == pytest.approx(WINDOW_S + 1)
    assert later["requests"] == 12  # every outcome counts as a request
    assert 1.0 < later["p50_ms"] <= 10.0  # latency of the successful ones only
    assert later["queue_mean_ms"] == pytest.approx(0.5)


@pytest.mark.anyio
async def test_background_sampling_keeps_a_baseline_a_minute_old() -> None:
    metrics = Metrics(CollectorRegistry(), (0.001, 0.01), process=False, gpu=False)
    clock = Clock()
    live = LiveFigures(metrics, clock)
    task = live.start(every_s=0.01)
    try:
        for _ in range(20):  # 20 samples, 10 s apart on the test's clock, with nobody looking at the page
            clock.now += 10
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
    assert live.figures()["window_s"] <= WINDOW_S + 10
