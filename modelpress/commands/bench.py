from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from modelpress.errors import fail


def _levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        fail(f"--concurrency {text!r}: expected comma-separated whole numbers, e.g. 1,4,16,32,64")
    if not levels or any(c < 1 or c > 1024 for c in levels):
        fail(f"--concurrency {text!r}: each level must be between 1 and 1024")
    return levels


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench(
        repository: Path = typer.Argument(..., help="Model repository (e.g. demo-output/repository)."),
        out: Path = typer.Option(Path("benchmarks/results"), help="Folder for the JSON results and summary."),
        threads: int = typer.Option(2, min=1, help="Threads for ONNX Runtime, PyTorch and the server."),
        batch: int = typer.Option(64, min=1, help="Batch size of the in-process throughput measurement."),
        quick: bool = typer.Option(False, help="A few minutes in all: short timing runs and load steps."),
        served: bool = typer.Option(True, help="Also run the served benchmark (needs the repository's model)."),
        model: str = typer.Option("digits", help="Model the served benchmark drives."),
        concurrency: str = typer.Option("1,4,16,32,64", help="Concurrency levels of the served sweep."),
        duration: float = typer.Option(10.0, min=0.5, max=600, help="Seconds per served step."),
    ) -> None:
        """In-process and served benchmarks side by side, with ratios against PyTorch eager fp32."""
        from benchmarks.inprocess import bench_repository
        from benchmarks.inprocess import to_markdown as inprocess_markdown

        if not repository.is_dir():
            fail(f"{repository}: not a model repository (run `modelpress pipeline` first)")
        levels = _levels(concurrency)
        if out.exists() and not out.is_dir():
            fail(f"--out {out}: is a file, expected a folder")
        out.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        inproc = bench_repository(repository, threads=threads, batch=batch, quick=quick)
        summary = ["# Benchmark summary", "", f"In-process, {threads} threads:", "", inprocess_markdown(inproc)]
        (out / f"inprocess-{stamp}.json").write_text(json.dumps(inproc, indent=2))
        if served:
            summary += _served(repository, model, levels, 3.0 if quick else duration, threads, out, stamp)
        (out / f"summary-{stamp}.md").write_text("\n".join(summary))
        typer.echo("\n".join(summary))
        typer.echo(f"results written to {out}/ (*-{stamp}.*)")

    @app.command("loadtest")
    def loadtest(
        url: str = typer.Option(..., help="Base URL of a running V2 server, e.g. http://127.0.0.1:8000."),
        model: str = typer.Option(..., help="Model to infer with."),
        features: int = typer.Option(64, min=1, help="Features of the FP32 input tensor named 'input'."),
        concurrency: str = typer.Option("1,4,16,32,64", help="Concurrency levels to sweep."),
        duration: float = typer.Option(10.0, min=0.5, max=600, help="Seconds per step."),
        payload: str = typer.Option("json", help="json or binary (V2 binary tensor extension)."),
    ) -> None:
        """Bounded closed-loop load against a running server: throughput, latency percentiles, errors."""
        import asyncio

        from benchmarks.loadgen import run_step
        from benchmarks.scrape import scrape, step_split
        from benchmarks.served import payload_for

        if payload not in ("json", "binary"):
            fail(f"--payload {payload!r}: expected json or binary")
        url = url.rstrip("/")
        for level in _levels(concurrency):
            before = scrape(url, model)
            result = asyncio.run(run_step(url, payload_for(payload, model, features), concurrency=level,
                                          duration=duration))  # fmt: skip
            result.server = step_split(before, scrape(url, model))
            typer.echo(json.dumps(result.as_dict()))


def _served(repository: Path, model: str, levels: list[int], duration: float, threads: int, out: Path,
            stamp: str) -> list[str]:  # fmt: skip
    from benchmarks.served import (
        echo_target,
        modelpress_target,
        naive_torch_target,
        run_target,
        to_markdown,
    )
    from serving.manifest import list_versions, read_manifest

    versions = list_versions(repository / model)
    if not versions:
        fail(f"--model {model!r}: not in {repository}")
    manifest = read_manifest(repository / model / str(versions[-1]))
    features = manifest.inputs[0].shape[-1]
    targets = [modelpress_target(repository, batching=True, threads=threads),
               modelpress_target(repository, batching=False, threads=threads), echo_target()]  # fmt: skip
    checkpoint = manifest.source.get("checkpoint")
    if checkpoint and Path(checkpoint).is_dir():
        targets.insert(2, naive_torch_target(Path(checkpoint), threads))
    results = [run_target(t, model, features, levels, duration, out) for t in targets]
    (out / f"served-{stamp}.json").write_text(json.dumps(results, indent=2))
    return ["", f"Served ({model}, {duration:.0f} s per step, loopback, load generator on the same machine):", "",
            to_markdown(results)]  # fmt: skip
