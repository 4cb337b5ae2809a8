"""Latency and throughput measurement shared by ``compare`` and the benchmarks.

Every figure is a median over many calls after a warm-up, timed with ``perf_counter_ns``; the number of
calls adapts to the model's speed within a time budget so tiny and large models both get stable medians.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Per-call latency percentiles in milliseconds over ``iterations`` timed calls."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    iterations: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class TimingBudget:
    """How long to measure.

    ``warmup`` untimed calls, then between ``min_iterations`` and ``max_iterations`` timed calls, stopping
    early once ``max_seconds`` have passed (after the minimum).
    """

    warmup: int = 20
    min_iterations: int = 50
    max_iterations: int = 2000
    max_seconds: float = 2.0


QUICK = TimingBudget(warmup=5, min_iterations=20, max_iterations=300, max_seconds=0.5)
STANDARD = TimingBudget()


def measure(fn: Callable[[], object], budget: TimingBudget = STANDARD) -> LatencyStats:
    """Time ``fn()`` per the budget and return its latency percentiles."""
    for _ in range(budget.warmup):
        fn()
    samples: list[int] = []
    deadline = time.perf_counter() + budget.max_seconds
    while len(samples) < budget.max_iterations:
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
        if len(samples) >= budget.min_iterations and time.perf_counter() > deadline:
            break
    ms = np.asarray(samples, dtype=np.float64) / 1e6
    return LatencyStats(
        p50_ms=float(np.percentile(ms, 50)),
        p90_ms=float(np.percentile(ms, 90)),
        p99_ms=float(np.percentile(ms, 99)),
        mean_ms=float(ms.mean()),
        iterations=len(samples),
    )


def rows_per_second(stats: LatencyStats, batch: int) -> float:
    """Throughput implied by the median latency of a batch of ``batch`` rows."""
    return batch / (stats.p50_ms / 1e3) if stats.p50_ms > 0 else float("inf")
