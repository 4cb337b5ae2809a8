"""Served benchmark, every server driven by the same bounded load generator in one run.

Our server with batching on and off, a naive FastAPI + PyTorch server, and an echo ceiling.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchmarks.loadgen import Payload, run_step
from benchmarks.payloads import v2_binary, v2_json
from benchmarks.processes import free_port, python_module, rss_bytes, running_server
from benchmarks.scrape import scrape, step_split


@dataclass
class Target:
    """One server under test: how to start it and which payload kinds it takes."""

    label: str
    argv: Callable[[int], list[str]]
    env: dict[str, str] = field(default_factory=dict)
    payload_kinds: tuple[str, ...] = ("json",)


def modelpress_target(repository: Path, *, batching: bool, threads: int) -> Target:
    env = {"MODELPRESS_INTRA_OP_THREADS": str(threads), "MODELPRESS_INTER_OP_THREADS": "1"}
    if not batching:
        env |= {"MODELPRESS_MAX_BATCH_SIZE": "1", "MODELPRESS_MAX_QUEUE_DELAY_US": "0"}
    label = "modelpress, batching " + ("on" if batching else "off")
    return Target(label, lambda port: python_module("serving", "--repository", str(repository), "--port", str(port)),
                  env, ("json", "binary"))  # fmt: skip


def naive_torch_target(checkpoint: Path, threads: int) -> Target:
    return Target(
        "naive FastAPI + PyTorch eager",
        lambda port: python_module(
            "benchmarks.baselines.naive_torch_server", str(checkpoint), "--port", str(port), "--threads", str(threads)
        ),
    )


def echo_target() -> Target:
    return Target("echo ceiling (FastAPI, no model)",
                  lambda port: python_module("benchmarks.baselines.echo_server", "--port", str(port)))  # fmt: skip


def payload_for(kind: str, model: str, features: int, seed: int = 0) -> Payload:
    sample = np.random.default_rng(seed).standard_normal((1, features)).astype(np.float32)
    return v2_binary(model, "input", sample, output="logits") if kind == "binary" else v2_json(model, "input", sample)


def run_target(
    target: Target, model: str, features: int, concurrencies: Sequence[int], duration: float, log_dir: Path
) -> dict[str, object]:
    """Start the target, sweep the concurrency levels for each payload kind, stop it; return its results."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    steps: list[dict[str, object]] = []
    log = log_dir / f"{target.label.split(',')[0].split()[0]}-{port}.log"
    with running_server(target.argv(port), port, env=target.env, log=log) as proc:
        rss_ready = rss_bytes(proc.pid)
        plan = [(kind, c) for kind in target.payload_kinds for c in concurrencies]
        for kind, concurrency in tqdm(plan, desc=target.label, unit="step"):
            before = scrape(base, model)
            result = asyncio.run(run_step(base, payload_for(kind, model, features), concurrency=concurrency,
                                          duration=duration))  # fmt: skip
            result.server = step_split(before, scrape(base, model))
            steps.append(result.as_dict())
        rss_after = rss_bytes(proc.pid)
    return {"target": target.label, "rss_ready_bytes": rss_ready, "rss_after_bytes": rss_after, "steps": steps}


def compare_at(results: list[dict], concurrency: int, kind: str = "json") -> dict[str, dict[str, float | None]]:
    """Throughput and p99 of every target at one concurrency level and payload kind."""
    table: dict[str, dict[str, float | None]] = {}
    for result in results:
        for step in result["steps"]:
            if step["concurrency"] == concurrency and step["payload"] == kind:
                table[result["target"]] = {"throughput_rps": step["throughput_rps"], "p99_ms": step["p99_ms"],
                                           "errors": step["errors"]}  # fmt: skip
    return table


def to_markdown(results: list[dict]) -> str:
    lines = ["| server | payload | concurrency | req/s | p50 ms | p99 ms | errors | queue ms | compute ms | "
             "rows/batch |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip

    def fmt(value: object, spec: str) -> str:
        return "–" if value is None else format(value, spec)

    for result in results:
        for s in result["steps"]:
            server = s.get("server") or {}
            lines.append(
                f"| {result['target']} | {s['payload']} | {s['concurrency']} | {s['throughput_rps']:,.0f} | "
                f"{fmt(s['p50_ms'], '.2f')} | {fmt(s['p99_ms'], '.2f')} | {s['errors']} | "
                f"{fmt(server.get('queue_ms'), '.3f')} | {fmt(server.get('compute_ms'), '.3f')} | "
                f"{fmt(server.get('mean_batch_rows'), '.1f')} |"
            )
    rss = [
        f"- {r['target']}: RSS {r['rss_ready_bytes'] / 2**20:.0f} MiB when ready, "
        f"{r['rss_after_bytes'] / 2**20:.0f} MiB after the run"
        for r in results
        if r["rss_ready_bytes"]
    ]
    return "\n".join([*lines, "", *rss]) + "\n"
