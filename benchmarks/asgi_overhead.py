"""Event-loop CPU per inference request, in process: the app called as ASGI, no sockets, no HTTP parser.

    python -m modelpress.benchmarks.asgi_overhead --repository DIR --model digits --requests 3000 --rounds 3

Builds our app over the repository (fast path on, then off, alternating for ``rounds``), runs its lifespan,
and sends ``requests`` batch-1 V2 JSON requests one after another straight to the ASGI callable. Reports the
event-loop thread's CPU time per request (``time.thread_time``: what bounds one uvicorn worker under load) and
the wall time per request. The compute threads' time is not in the CPU figure; the wall time includes waiting
for them. What the server adds beyond this (uvicorn, httptools, the socket) is the same with or without the
fast path, so the difference between the two rows is what the fast path saves per request.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from modelpress.benchmarks.loadgen import Payload
from modelpress.benchmarks.served import latest_manifest, workload_for


async def _drive(app: Any, payload: Payload, requests: int) -> tuple[float, float]:
    """(loop CPU µs, wall µs) per request over ``requests`` sequential requests."""
    headers = [(k.lower().encode(), v.encode()) for k, v in payload.headers.items()]
    headers.append((b"content-length", str(len(payload.body)).encode()))
    scope_base = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                  "scheme": "http", "path": payload.path, "raw_path": payload.path.encode(), "root_path": "",
                  "query_string": b"", "headers": headers, "client": ("127.0.0.1", 1),
                  "server": ("127.0.0.1", 2)}  # fmt: skip
    body_message = {"type": "http.request", "body": payload.body, "more_body": False}
    statuses: list[int] = []

    async def receive() -> dict:
        return body_message

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    for _ in range(50):  # warm-up: first-use lookups, the metric series
        await app(dict(scope_base), receive, send)
    statuses.clear()
    cpu, wall = time.thread_time(), time.perf_counter()
    for _ in range(requests):
        await app(dict(scope_base), receive, send)
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    if set(statuses) != {200}:
        raise SystemExit(f"error: the server answered {sorted(set(statuses))}, expected only 200")
    return cpu / requests * 1e6, wall / requests * 1e6


async def measure(repository: Path, model: str, *, fast_path: bool, requests: int) -> tuple[float, float]:
    from modelpress.serving.app import create_app
    from modelpress.serving.settings import Settings

    found = latest_manifest(repository, model)
    if found is None:
        raise SystemExit(f"error: --model {model!r}: not in {repository}")
    payload = workload_for(model, found.inputs[0], found.outputs[0].name).payloads["json"]
    app = create_app(Settings(repository=repository, fast_path=fast_path), handle_signals=False)
    async with app.router.lifespan_context(app):
        return await _drive(app, payload, requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--model", default="digits")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.requests < 1 or args.rounds < 1:
        raise SystemExit("error: --requests and --rounds must be at least 1")
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop  # the loop uvicorn runs with here
    except ImportError:
        loop_factory = None
    figures: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for _ in range(args.rounds):
        for fast in (True, False):
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                figures[fast].append(runner.run(measure(args.repository, args.model, fast_path=fast,
                                                        requests=args.requests)))  # fmt: skip
    print("| path | loop CPU µs / request (rounds) | median | wall µs / request (median) |")
    print("|---|---|---|---|")
    for fast in (True, False):
        cpus = [c for c, _ in figures[fast]]
        walls = [w for _, w in figures[fast]]
        label = "fast path" if fast else "through FastAPI (fast_path=false)"
        rounds = ", ".join(f"{c:.0f}" for c in cpus)
        print(f"| {label} | {rounds} | {statistics.median(cpus):.0f} | {statistics.median(walls):.0f} |")


if __name__ == "__main__":
    main()
