"""Served benchmark: every server driven by the same wrk load generator, side by side in one run.

Our server with dynamic batching on and off, the naive FastAPI + PyTorch eager servers (digits from its
checkpoint, MiniLM from the packaged teacher), and an echo ceiling on the same stack; each one uvicorn worker,
started in turn, swept over the concurrency levels for each of its payload kinds, then stopped. Before and
after each measured step the server's ``/metrics`` are read for its own queue/compute split.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from modelpress.benchmarks.loadgen import Payload, StepResult, run_wrk
from modelpress.benchmarks.payloads import v2_binary, v2_json
from modelpress.benchmarks.processes import free_port, python_module, rss_bytes, running_server
from modelpress.benchmarks.scrape import scrape, step_split
from modelpress.serving.manifest import ModelManifest, TensorSpec, list_versions, read_manifest

# One held-out-like sentence (19 words, ~22 tokens): every text request is the same, so runs compare.
BATCHING_ON = "modelpress, batching on"
BATCHING_OFF = "modelpress, batching off"
NAIVE = "naive FastAPI + PyTorch eager"
ECHO = "echo ceiling (FastAPI, no model)"
SENTENCE = "The interpreter reads the source file, compiles it to byte code and executes it one statement at a time."


@dataclass(frozen=True)
class SweepConfig:
    """How every server is driven: levels, whole seconds per step (wrk's unit) and where things run.

    ``client_cpus``/``server_cpus`` pin wrk and the servers with taskset (None: the scheduler decides).
    """

    concurrencies: tuple[int, ...] = (1, 4, 16, 32, 64)
    duration: int = 10
    warmup: int = 2
    client_threads: int = 1
    client_cpus: tuple[int, ...] | None = None
    server_cpus: tuple[int, ...] | None = None
    threads: int = 2


@dataclass(frozen=True)
class Workload:
    """One model as every server sees it: its V2 payloads (by kind) and the output the binary form asks for."""

    model: str
    payloads: dict[str, Payload]


@dataclass
class Target:
    """One server under test: how to start it, which workloads and payload kinds it takes."""

    label: str
    argv: Callable[[int], list[str]]
    workloads: list[Workload]
    env: dict[str, str] = field(default_factory=dict)
    kinds: tuple[str, ...] = ("json",)


def workload_for(model: str, spec: TensorSpec, output: str, seed: int = 0) -> Workload:
    """A batch-1 request for input ``spec``: a sentence for BYTES, seeded normal floats otherwise."""
    if spec.datatype == "BYTES":
        sample = np.array([SENTENCE])
    else:
        features = [d if d > 0 else 1 for d in spec.shape[1:]]
        sample = np.random.default_rng(seed).standard_normal((1, *features)).astype(np.float32)
    return Workload(model, {"json": v2_json(model, spec.name, sample),
                            "binary": v2_binary(model, spec.name, sample, output=output)})  # fmt: skip


def _pinned(argv: list[str], cpus: Sequence[int] | None) -> list[str]:
    return ["taskset", "-c", ",".join(map(str, cpus)), *argv] if cpus else argv


def modelpress_target(repository: Path, workloads: list[Workload], *, batching: bool, config: SweepConfig) -> Target:
    """Our server over the whole repository; batching off is one request per ``session.run``, no waiting."""
    env = {"MODELPRESS_INTRA_OP_THREADS": str(config.threads), "MODELPRESS_INTER_OP_THREADS": "1",
           "MODELPRESS_LOG_LEVEL": "warning"}  # fmt: skip
    if not batching:
        env |= {"MODELPRESS_DYNAMIC_BATCHING": "false"}  # also over a manifest's own batching
    argv = python_module("modelpress.serving", "--repository", str(repository))
    return Target(BATCHING_ON if batching else BATCHING_OFF,
                  lambda port: _pinned([*argv, "--port", str(port)], config.server_cpus), workloads, env,
                  ("json", "binary"))  # fmt: skip


def baseline_target(label: str, argv: list[str], workload: Workload, config: SweepConfig) -> Target:
    """A baseline server (naive PyTorch, echo) started as ``argv --port PORT``, JSON payloads only."""
    return Target(label, lambda port: _pinned([*argv, "--port", str(port)], config.server_cpus), [workload])


def naive_digits_target(checkpoint: Path, workload: Workload, config: SweepConfig) -> Target:
    argv = python_module(
        "modelpress.benchmarks.baselines.naive_torch_server", str(checkpoint), "--threads", str(config.threads)
    )
    return baseline_target(NAIVE, argv, workload, config)


def naive_text_target(source: str, workload: Workload, config: SweepConfig) -> Target:
    argv = python_module(
        "modelpress.benchmarks.baselines.naive_text_server", "--source", source, "--threads", str(config.threads)
    )
    return baseline_target(NAIVE, argv, workload, config)


def echo_target(workload: Workload, config: SweepConfig) -> Target:
    return baseline_target(ECHO, python_module("modelpress.benchmarks.baselines.echo_server"), workload, config)


def latest_manifest(repository: Path, name: str) -> ModelManifest | None:
    """The manifest of ``name``'s latest version, or None when the repository has no such model."""
    versions = list_versions(repository / name) if (repository / name).is_dir() else []
    return read_manifest(repository / name / str(versions[-1])) if versions else None


def targets_for(repository: Path, models: Sequence[str], config: SweepConfig) -> tuple[list[Target], list[str]]:
    """Our server (batching on, off) over the present ``models``, each one's naive server, the echo ceiling.

    The echo takes the first model's JSON payload. Returns the targets and a note for each model or baseline
    left out (not in the repository; no PyTorch source for its naive server).
    """
    workloads: list[Workload] = []
    naive: list[Target] = []
    notes: list[str] = []
    for name in models:
        manifest = latest_manifest(repository, name)
        if manifest is None:
            notes.append(f"{name}: not in {repository}, skipped")
            continue
        workload = workload_for(name, manifest.inputs[0], manifest.outputs[0].name)
        workloads.append(workload)
        checkpoint, text_source = manifest.source.get("checkpoint"), manifest.source.get("model")
        if manifest.inputs[0].datatype == "BYTES" and text_source:
            naive.append(naive_text_target(str(text_source), workload, config))
        elif checkpoint and Path(checkpoint).is_dir():
            naive.append(naive_digits_target(Path(checkpoint), workload, config))
        else:
            notes.append(f"{name}: no PyTorch checkpoint or source recorded, so no naive baseline")
    if not workloads:
        return [], notes
    ours = [modelpress_target(repository, workloads, batching=on, config=config) for on in (True, False)]
    return [*ours, *naive, echo_target(workloads[0], config)], notes


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (``/proc/loadavg``)."""
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def measure_step(base_url: str, payload: Payload, model: str, concurrency: int, config: SweepConfig) -> StepResult:
    """Warm up (not counted), read ``/metrics``, run the measured step, read ``/metrics`` again."""
    run = {"concurrency": concurrency, "threads": config.client_threads, "cpus": config.client_cpus}
    if config.warmup > 0:
        run_wrk(base_url, payload, seconds=config.warmup, **run)
    before = scrape(base_url, model)
    result = run_wrk(base_url, payload, seconds=config.duration, **run)
    result.server = step_split(before, scrape(base_url, model))
    return result


def run_target(target: Target, config: SweepConfig, log_dir: Path) -> list[dict[str, object]]:
    """Start the target, sweep every workload × payload kind × level, stop it; one result per workload."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = log_dir / f"server-{target.label.split(',')[0].split()[0]}-{port}.log"
    plan = [(w, kind, c) for w in target.workloads for kind in target.kinds for c in config.concurrencies]
    steps: dict[str, list[dict[str, object]]] = {w.model: [] for w in target.workloads}
    with running_server(target.argv(port), port, env=target.env, log=log) as proc:
        rss_ready = rss_bytes(proc.pid)
        for workload, kind, concurrency in tqdm(plan, desc=target.label, unit="step"):
            load = load_average()[0]
            result = measure_step(base, workload.payloads[kind], workload.model, concurrency, config)
            steps[workload.model].append({**result.as_dict(), "load_1m": load})
        rss_after = rss_bytes(proc.pid)
    return [{"target": target.label, "model": model, "rss_ready_bytes": rss_ready, "rss_after_bytes": rss_after,
             "steps": model_steps} for model, model_steps in steps.items()]  # fmt: skip


def run_sweep(targets: Sequence[Target], config: SweepConfig, log_dir: Path) -> dict[str, object]:
    """Every target in turn, with the machine's load average at the start and the end."""
    start = load_average()
    results = [r for target in targets for r in run_target(target, config, log_dir)]
    return {"config": {**config.__dict__, "cpu_count": os.cpu_count()}, "load_average_start": start,
            "load_average_end": load_average(), "results": results}  # fmt: skip


def step_at(results: Sequence[dict], target: str, model: str, concurrency: int, kind: str = "json") -> dict | None:
    """The step of ``target`` on ``model`` at one level and payload kind, or None if not measured."""
    for result in results:
        if result["target"] == target and result["model"] == model:
            for step in result["steps"]:
                if step["concurrency"] == concurrency and step["payload"] == kind:
                    return step
    return None


def _fmt(value: object, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def to_markdown(results: Sequence[dict]) -> str:
    """One table per model (every server, kind and level), then each server's RSS."""
    out: list[str] = []
    for model in dict.fromkeys(r["model"] for r in results):
        out += [f"**{model}**", "", "| server | payload | conc. | req/s | p50 ms | p90 ms | p95 ms | p99 ms | errors "
                "| queue ms | compute ms | rows/batch | load 1m |", "|---" * 13 + "|"]  # fmt: skip
        for result in (r for r in results if r["model"] == model):
            for s in result["steps"]:
                server = s.get("server") or {}
                out.append(
                    f"| {result['target']} | {s['payload']} | {s['concurrency']} | {s['throughput_rps']:,.0f} | "
                    + " | ".join(_fmt(s[f"p{p}_ms"], ".2f") for p in (50, 90, 95, 99))
                    + f" | {s['errors']} | {_fmt(server.get('queue_ms'), '.3f')} | "
                    f"{_fmt(server.get('compute_ms'), '.3f')} | {_fmt(server.get('mean_batch_rows'), '.1f')} | "
                    f"{s['load_1m']:.2f} |"
                )
        out.append("")
    seen: set[str] = set()
    for r in results:
        if r["rss_ready_bytes"] and r["target"] not in seen:
            seen.add(r["target"])
            out.append(f"- {r['target']}: RSS {r['rss_ready_bytes'] / 2**20:.0f} MiB when ready, "
                       f"{r['rss_after_bytes'] / 2**20:.0f} MiB after its steps")  # fmt: skip
    return "\n".join(out) + "\n"
