"""A bounded, closed-loop HTTP load generator (asyncio + httpx), in the manner of Triton's perf_analyzer.

``concurrency`` workers each send one request, wait for its answer, and send the next, for ``duration``
seconds (and never more than ``max_requests`` in all). Latency is measured per request on the client.
Only loopback targets are expected: this is a benchmark tool, not a traffic generator.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field

import httpx
import numpy as np


@dataclass(frozen=True)
class Payload:
    """One prepared request: path, body bytes and headers (JSON or V2 binary)."""

    path: str
    body: bytes
    headers: dict[str, str]
    kind: str


@dataclass
class StepResult:
    concurrency: int
    payload: str
    seconds: float
    requests: int
    errors: int
    status_counts: dict[str, int]
    throughput_rps: float
    p50_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    server: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _percentiles(latencies_ms: list[float]) -> dict[str, float | None]:
    if not latencies_ms:
        return {"p50_ms": None, "p90_ms": None, "p95_ms": None, "p99_ms": None}
    values = np.percentile(np.asarray(latencies_ms), [50, 90, 95, 99])
    return {k: float(v) for k, v in zip(("p50_ms", "p90_ms", "p95_ms", "p99_ms"), values, strict=True)}


async def run_step(
    base_url: str,
    payload: Payload,
    *,
    concurrency: int,
    duration: float,
    max_requests: int = 200_000,
    warmup: float = 0.5,
    timeout: float = 30.0,
) -> StepResult:
    """Drive ``concurrency`` closed-loop workers against ``base_url`` and summarise what came back."""
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors = 0
    sent = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as client:
        start = time.perf_counter()
        measure_from = start + warmup
        stop_at = measure_from + duration

        async def worker() -> None:
            nonlocal errors, sent
            while sent < max_requests:
                now = time.perf_counter()
                if now >= stop_at:
                    return
                sent += 1
                t0 = time.perf_counter()
                try:
                    response = await client.post(payload.path, content=payload.body, headers=payload.headers)
                    code = str(response.status_code)
                except httpx.HTTPError as e:
                    code = type(e).__name__
                t1 = time.perf_counter()
                if t0 < measure_from:
                    continue  # warm-up: connections open, caches fill, batches form
                statuses[code] = statuses.get(code, 0) + 1
                if code == "200":
                    latencies.append((t1 - t0) * 1e3)
                else:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = max(time.perf_counter() - measure_from, 1e-9)
    completed = sum(statuses.values())
    return StepResult(
        concurrency=concurrency,
        payload=payload.kind,
        seconds=elapsed,
        requests=completed,
        errors=errors,
        status_counts=statuses,
        throughput_rps=len(latencies) / elapsed,
        **_percentiles(latencies),
    )
