from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from modelpress.errors import fail

# Quick mode: whole seconds per wrk step and warm-up (wrk's unit); a few minutes for the demo's two models.
QUICK_DURATION, QUICK_WARMUP = 3, 1
# Where wrk and the servers run by default: not pinned. Measured on 2 cores (docs/benchmarks.md): pinning wrk to
# one core cost every server 3-7 %, and pinning the servers to the other leaves MiniLM one core to compute on.
CLIENT_CPUS, SERVER_CPUS = "", ""


def _levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        fail(f"--concurrency {text!r}: expected comma-separated whole numbers, e.g. 1,4,16,32,64")
    if not levels or any(c < 1 or c > 1024 for c in levels):
        fail(f"--concurrency {text!r}: each level must be between 1 and 1024")
    return levels


def _cpus(option: str, text: str) -> tuple[int, ...] | None:
    """``"0,1"`` -> (0, 1); ``""`` -> None (not pinned)."""
    if not text.strip():
        return None
    try:
        cpus = tuple(int(part) for part in text.split(","))
    except ValueError:
        fail(f"{option} {text!r}: expected comma-separated CPU numbers, e.g. 0 or 0,1 (empty: not pinned)")
    import os

    available = os.sched_getaffinity(0)
    if not set(cpus) <= available:
        fail(f"{option} {text!r}: CPUs {sorted(set(cpus) - available)} are not available (have {sorted(available)})")
    return cpus


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench(
        repository: Path = typer.Argument(..., help="Model repository (e.g. demo-output/repository)."),
        out: Path = typer.Option(Path("benchmarks/results"), help="Folder for the JSON results and summary."),
        threads: int = typer.Option(2, min=1, help="Threads for ONNX Runtime, PyTorch and the server."),
        batch: int = typer.Option(64, min=1, help="Batch size of the in-process throughput measurement."),
        quick: bool = typer.Option(False, help="A few minutes in all: short timing runs and load steps."),
        inprocess: bool = typer.Option(True, help="Run the in-process benchmark."),
        served: bool = typer.Option(True, help="Run the served benchmark (needs wrk)."),
        models: str = typer.Option("digits,minilm-int8", help="Models the served benchmark drives (absent: skipped)."),
        concurrency: str = typer.Option("1,4,16,32,64", help="Concurrency levels of the served sweep."),
        duration: int = typer.Option(10, min=1, max=600, help="Whole seconds per served step (--quick: 3)."),
        warmup: int = typer.Option(2, min=0, max=60, help="Uncounted seconds before each step (--quick: 1)."),
        client_cpus: str = typer.Option(CLIENT_CPUS, help="CPUs wrk is pinned to (empty: not pinned)."),
        server_cpus: str = typer.Option(SERVER_CPUS, help="CPUs the servers are pinned to (empty: not pinned)."),
    ) -> None:
        """In-process and served benchmarks side by side, with ratios against PyTorch eager fp32."""
        if not repository.is_dir():
            fail(f"{repository}: not a model repository (run `modelpress pipeline` first)")
        if out.exists() and not out.is_dir():
            fail(f"--out {out}: is a file, expected a folder")
        config = _sweep_config(concurrency, QUICK_DURATION if quick else duration, QUICK_WARMUP if quick else warmup,
                               threads, client_cpus, server_cpus)  # fmt: skip
        out.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        summary = ["# Benchmark summary", ""]
        if inprocess:
            summary += _inprocess(repository, threads, batch, quick, out, stamp)
        if served:
            summary += _served(repository, [m.strip() for m in models.split(",") if m.strip()], config, out, stamp)
        (out / f"summary-{stamp}.md").write_text("\n".join(summary))
        typer.echo("\n".join(summary))
        typer.echo(f"results written to {out}/ (*-{stamp}.*)")

    @app.command("loadtest")
    def loadtest(
        url: str = typer.Option(..., help="Base URL of a running V2 server, e.g. http://127.0.0.1:8000."),
        model: str = typer.Option(..., help="Model to infer with."),
        features: int = typer.Option(64, min=1, help="Features of the FP32 input tensor named 'input'."),
        concurrency: str = typer.Option("1,4,16,32,64", help="Concurrency levels to sweep."),
        duration: int = typer.Option(10, min=1, max=600, help="Whole seconds per step."),
        warmup: int = typer.Option(1, min=0, max=60, help="Uncounted seconds before each step."),
        payload: str = typer.Option("json", help="json or binary (V2 binary tensor extension)."),
        client_cpus: str = typer.Option("", help="CPUs wrk is pinned to (empty: not pinned)."),
    ) -> None:
        """Bounded closed-loop load (wrk) against a running server: throughput, latency percentiles, errors."""
        from modelpress.benchmarks.loadgen import WrkError
        from modelpress.benchmarks.served import measure_step, workload_for
        from modelpress.serving.manifest import TensorSpec

        if payload not in ("json", "binary"):
            fail(f"--payload {payload!r}: expected json or binary")
        config = _sweep_config(concurrency, duration, warmup, 1, client_cpus, "")
        spec = TensorSpec(name="input", datatype="FP32", shape=[-1, features])
        request = workload_for(model, spec, "logits").payloads[payload]
        url = url.rstrip("/")
        for level in config.concurrencies:
            try:
                result = measure_step(url, request, model, level, config)
            except WrkError as e:
                fail(str(e).splitlines()[0])
            typer.echo(json.dumps(result.as_dict()))


def _sweep_config(concurrency: str, duration: int, warmup: int, threads: int, client_cpus: str, server_cpus: str):
    from modelpress.benchmarks.served import SweepConfig

    levels = tuple(_levels(concurrency))
    client, server = _cpus("--client-cpus", client_cpus), _cpus("--server-cpus", server_cpus)
    return SweepConfig(levels, duration, warmup, threads=threads, client_cpus=client, server_cpus=server)


def _inprocess(repository: Path, threads: int, batch: int, quick: bool, out: Path, stamp: str) -> list[str]:
    from modelpress.benchmarks.inprocess import bench_repository
    from modelpress.benchmarks.inprocess import to_markdown as inprocess_markdown

    inproc = bench_repository(repository, threads=threads, batch=batch, quick=quick)
    (out / f"inprocess-{stamp}.json").write_text(json.dumps(inproc, indent=2))
    return [f"In-process, {threads} threads:", "", inprocess_markdown(inproc)]


def _served(repository: Path, models: list[str], config, out: Path, stamp: str) -> list[str]:
    """The served sweep; skipped with a note (not an error) where wrk is missing, as `make tools` says."""
    from modelpress.benchmarks.loadgen import WrkError, wrk_binary
    from modelpress.benchmarks.served import run_sweep, targets_for, to_markdown
    from modelpress.benchmarks.targets import check_targets
    from modelpress.benchmarks.targets import to_markdown as targets_markdown
    from modelpress.serving.settings import Settings

    try:
        wrk_binary()
    except WrkError as e:
        typer.echo(f"note: served benchmark skipped: {e}", err=True)
        return ["", f"Served benchmark skipped: {e}"]
    targets, notes = targets_for(repository, models, config)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    if not targets:
        fail(f"--models {','.join(models)}: none of them is in {repository}")
    sweep = run_sweep(targets, config, out)
    delay_ms = Settings.model_fields["max_queue_delay_us"].default / 1e3
    checks = check_targets(sweep["results"], queue_delay_ms=delay_ms)
    sweep["targets"] = [c.as_dict() for c in checks]
    (out / f"served-{stamp}.json").write_text(json.dumps(sweep, indent=2))
    pinning = (f"wrk on CPUs {config.client_cpus or 'any'}, servers on CPUs {config.server_cpus or 'any'}, "
               f"{config.client_threads} wrk thread(s)")  # fmt: skip
    return ["", f"Served: wrk closed loop, {config.duration} s per step after {config.warmup} s warm-up, one uvicorn "
            f"worker per server, {pinning}; load average {sweep['load_average_start']} at the start, "
            f"{sweep['load_average_end']} at the end.", *[f"- {n}" for n in notes], "", to_markdown(sweep["results"]),
            "Targets:", "", targets_markdown(checks)]  # fmt: skip
