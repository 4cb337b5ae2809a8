"""Live figures for the page: requests/s, p50/p99 latency and queue time per model over the last minute.

Computed from the app's own Prometheus registry (the histograms ``/metrics`` exposes), the way
``rate()`` and ``histogram_quantile()`` would over a one-minute range: each call takes a snapshot of the
cumulative counters, and the figures are the difference to the oldest snapshot still inside the window.
Quantiles are interpolated linearly inside the histogram bucket that holds them, so they are as coarse as the
buckets (``MODELPRESS_METRICS_BUCKETS``). A background task samples every :data:`SAMPLE_S` seconds, so the
window is a minute (plus at most one sampling period) even for the first look. With several worker processes
each answers with its own figures.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from modelpress.serving.metrics import Metrics

WINDOW_S = 60.0
SAMPLE_S = 5.0  # background sampling period: the baseline is at most this much older than a window
_KEEP = 240  # snapshots kept at most (one per sample or poll; a poll every 0.25 s still covers the window)

Key = tuple[str, str]  # (model, version)


@dataclass
class Histogram:
    """Cumulative bucket counts (by upper bound, +Inf last), count and sum of one series."""

    buckets: dict[float, float] = field(default_factory=dict)
    count: float = 0.0
    total: float = 0.0

    def minus(self, older: Histogram | None) -> Histogram:
        if older is None:
            return self
        return Histogram(
            {le: n - older.buckets.get(le, 0.0) for le, n in self.buckets.items()},
            self.count - older.count,
            self.total - older.total,
        )

    def quantile(self, q: float) -> float | None:
        """Like Prometheus' ``histogram_quantile``: None when empty; the top finite bound when in +Inf."""
        if self.count <= 0:
            return None
        rank = q * self.count
        lower, below = 0.0, 0.0
        bounds = sorted(self.buckets)
        for le in bounds:
            seen = self.buckets[le]
            if seen >= rank:
                if math.isinf(le):
                    finite = [b for b in bounds if not math.isinf(b)]
                    return finite[-1] if finite else None
                inside = seen - below
                return lower + (le - lower) * ((rank - below) / inside if inside > 0 else 1.0)
            lower, below = le, seen
        return None


@dataclass
class Snapshot:
    at: float
    requests: dict[Key, float] = field(default_factory=dict)
    latency: dict[Key, Histogram] = field(default_factory=dict)
    queue: dict[Key, Histogram] = field(default_factory=dict)


def _add_sample(series: dict[Key, Histogram], key: Key, suffix: str, labels: dict[str, str], value: float) -> None:
    hist = series.setdefault(key, Histogram())
    if suffix == "_bucket":
        le = float(labels["le"])
        hist.buckets[le] = hist.buckets.get(le, 0.0) + value
    elif suffix == "_count":
        hist.count += value
    elif suffix == "_sum":
        hist.total += value


def snapshot(metrics: Metrics, at: float) -> Snapshot:
    """The cumulative figures now: requests by model (every outcome), successful latency, queue time."""
    snap = Snapshot(at)
    for family in metrics.request_duration.collect():
        for sample in family.samples:
            labels = sample.labels
            key = (labels["model"], labels["version"])
            suffix = sample.name[len(family.name) :]
            if suffix == "_count":
                snap.requests[key] = snap.requests.get(key, 0.0) + sample.value
            if labels.get("outcome") == "success":
                _add_sample(snap.latency, key, suffix, labels, sample.value)
    for family in metrics.queue_duration.collect():
        for sample in family.samples:
            key = (sample.labels["model"], sample.labels["version"])
            _add_sample(snap.queue, key, sample.name[len(family.name) :], sample.labels, sample.value)
    return snap


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(1000.0 * seconds, 4)


class LiveFigures:
    """Keeps recent snapshots and answers each model's figures over the last :data:`WINDOW_S` seconds.

    :meth:`start` samples every few seconds in the background, so the first look at the page already covers the
    last minute (without it, the span is from the previous look, which may be long ago; ``window_s`` says).

    Args:
        metrics: the app's metrics.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, metrics: Metrics, clock: Callable[[], float] = time.monotonic) -> None:
        self.metrics = metrics
        self.clock = clock
        self._snapshots: deque[Snapshot] = deque([Snapshot(clock())], maxlen=_KEEP)  # all zero at start

    def start(self, every_s: float = SAMPLE_S) -> asyncio.Task:
        """Sample in the background on the running loop; cancel the returned task to stop."""

        async def sample() -> None:
            while True:
                await asyncio.sleep(every_s)
                self._advance()

        return asyncio.get_running_loop().create_task(sample(), name="modelpress-live-figures")

    def _advance(self) -> tuple[Snapshot, Snapshot]:
        """Take a snapshot; return it with the baseline: the newest snapshot at least a window old (or the oldest)."""
        now = snapshot(self.metrics, self.clock())
        while len(self._snapshots) > 1 and self._snapshots[1].at <= now.at - WINDOW_S:
            self._snapshots.popleft()
        base = self._snapshots[0]
        self._snapshots.append(now)
        return now, base

    def figures(self) -> dict:
        """``{"window_s": ..., "models": [{"name", "version", "requests_per_s", "p50_ms", "p99_ms", ...}]}``."""
        now, base = self._advance()
        window = max(now.at - base.at, 1e-9)
        models = []
        for key in sorted(set(now.requests) | set(now.latency) | set(now.queue)):
            latency = now.latency.get(key, Histogram()).minus(base.latency.get(key))
            queue = now.queue.get(key, Histogram()).minus(base.queue.get(key))
            requests = now.requests.get(key, 0.0) - base.requests.get(key, 0.0)
            models.append({
                "name": key[0],
                "version": key[1],
                "requests": int(requests),
                "requests_per_s": round(requests / window, 3),
                "p50_ms": _ms(latency.quantile(0.5)),
                "p99_ms": _ms(latency.quantile(0.99)),
                "queue_mean_ms": _ms(queue.total / queue.count) if queue.count > 0 else None,
                "queue_p99_ms": _ms(queue.quantile(0.99)),
            })  # fmt: skip
        return {"window_s": round(window, 3), "models": models}
