"""A bounded open-loop load driver for soak and overload runs (asyncio + httpx), loopback only.

Open loop: requests leave at a fixed rate whatever the server does, as real clients do, so an overloaded
server shows up as 503s and latency rather than as a politely slower client. In flight is capped
(``max_inflight``, counted as ``client_shed`` when hit) and every run is bounded in time.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx
import numpy as np

from modelpress.benchmarks.loadgen import Payload


@dataclass
class Sample:
    sent_s: float  # since the run started
    latency_ms: float
    status: int  # 0: transport error or timeout
    retry_after: bool


@dataclass
class Window:
    """What one slice of a run saw."""

    start_s: float
    sent: int
    ok: int
    rejected_503: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None
    p99_503_ms: float | None
    rss_bytes: int | None = None

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass
class Run:
    rate_rps: float
    seconds: float
    samples: list[Sample] = field(default_factory=list)
    client_shed: int = 0

    def windows(self, width_s: float) -> list[Window]:
        count = max(1, int(np.ceil(self.seconds / width_s)))
        buckets: list[list[Sample]] = [[] for _ in range(count)]
        for s in self.samples:
            buckets[min(count - 1, int(s.sent_s / width_s))].append(s)
        return [summarise(i * width_s, b) for i, b in enumerate(buckets)]

    def summary(self) -> Window:
        return summarise(0.0, self.samples)


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def summarise(start_s: float, samples: list[Sample]) -> Window:
    ok = [s.latency_ms for s in samples if 200 <= s.status < 300]
    shed = [s.latency_ms for s in samples if s.status == 503]
    errors = sum(1 for s in samples if not (200 <= s.status < 300 or s.status == 503))
    return Window(start_s, len(samples), len(ok), len(shed), errors, _pct(ok, 50), _pct(ok, 99), _pct(shed, 99))


async def closed_loop_peak(base_url: str, payload: Payload, *, concurrency: int, seconds: float) -> float:
    """Requests per second ``concurrency`` back-to-back clients get answered (2xx only), after 1 s warm-up."""
    done = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        begin = time.perf_counter()
        measure_from, stop_at = begin + 1.0, begin + 1.0 + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop_at:
                r = await client.post(payload.path, content=payload.body, headers=payload.headers)
                if r.is_success and time.perf_counter() >= measure_from:
                    done += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / seconds


async def open_loop(
    base_url: str,
    payload: Payload,
    *,
    rate_rps: float,
    seconds: float,
    max_inflight: int = 512,
    timeout_s: float = 30.0,
    on_tick=None,
) -> Run:
    """Send ``rate_rps`` requests per second for ``seconds``; ``on_tick(elapsed_s)`` runs about every second."""
    run = Run(rate_rps, seconds)
    limits = httpx.Limits(max_connections=max_inflight, max_keepalive_connections=max_inflight)
    inflight: set[asyncio.Task] = set()
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout_s) as client:
        begin = time.perf_counter()

        async def one(sent_s: float) -> None:
            started = time.perf_counter()
            try:
                r = await client.post(payload.path, content=payload.body, headers=payload.headers)
                status, retry = r.status_code, "retry-after" in r.headers
            except httpx.HTTPError:
                status, retry = 0, False
            run.samples.append(Sample(sent_s, (time.perf_counter() - started) * 1e3, status, retry))

        launched, next_tick = 0, 1.0
        while (elapsed := time.perf_counter() - begin) < seconds:
            due = int(elapsed * rate_rps) - launched  # catch up after a late wake-up, so the rate holds
            for _ in range(max(0, due)):
                launched += 1
                if len(inflight) >= max_inflight:
                    run.client_shed += 1
                    continue
                task = asyncio.create_task(one(elapsed))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
            if on_tick is not None and elapsed >= next_tick:
                on_tick(elapsed)
                next_tick += 1.0
            await asyncio.sleep(min(0.002, 1 / rate_rps))
        if inflight:
            await asyncio.wait(inflight, timeout=timeout_s + 5)
    return run
