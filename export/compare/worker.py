"""Measure one model in a fresh process: ``python -m modelpress.export.compare.worker``.

The same as ``python -m modelpress.benchmarks.worker``.

A fresh process makes the figures the model's own: its peak RSS holds nothing else, and PyTorch's thread pool
is the one asked for. In a process whose torch thread count changed before (training at one thread, then
timing at two), the 2-thread OpenMP pool was measured at ~88 ms per call instead of ~0.2 ms for the digits
CNN, so an in-process figure would make every speed-up look hundreds of times better.

Prints one JSON object: batch-1 latency percentiles, throughput at the given batch (unless
``--latency-only``), RSS before loading and peak RSS after measuring.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelpress.export.compare.runners import (
    ort_callable,
    ort_session,
    synthetic_inputs,
    throughput_batch,
    torch_callable,
)
from modelpress.export.compare.timing import QUICK, STANDARD, measure, rows_per_second
from modelpress.serving.manifest import read_manifest
from modelpress.serving.memory import rss_bytes

# (feeds → a callable running the model once on them, batch size → feeds, the throughput batch)
Model = tuple[Callable[[dict[str, np.ndarray]], Callable[[], object]], Callable[[int], dict[str, np.ndarray]], int]


class WorkerError(Exception):
    """The worker process failed; the message is the last line it wrote to stderr."""


def measure_in_fresh_process(args: Sequence[str], *, timeout: float | None = None) -> dict[str, Any]:
    """Run the worker with ``args`` (its command-line arguments) in a new interpreter and return its JSON.

    Raises:
        WorkerError: the worker exited with an error.
        subprocess.TimeoutExpired: it ran longer than ``timeout`` seconds.
    """
    argv = [sys.executable, "-m", "modelpress.export.compare.worker", *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise WorkerError((proc.stderr.strip().splitlines() or ["no output"])[-1])
    return json.loads(proc.stdout)


def eager_latency_ms(checkpoint: Path, threads: int, *, quick: bool = False) -> float:
    """Median batch-1 latency of a checkpoint's module in PyTorch eager fp32, measured in a fresh process.

    A search has trained and exported in its own process, with other torch thread counts, before it times.

    Raises:
        ExportError: the worker failed (its message says why).
    """
    from modelpress.export.errors import ExportError

    args = ["--kind", "torch", "--checkpoint", str(checkpoint), "--threads", str(threads), "--latency-only"]
    try:
        result = measure_in_fresh_process([*args, *(["--quick"] if quick else [])], timeout=600)
    except WorkerError as e:
        raise ExportError(f"timing PyTorch eager failed: {e}") from e
    return float(result["latency"]["p50_ms"])


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.checkpoint is not None and args.kind != "torch":
        parser.error("--checkpoint goes with --kind torch (an ONNX model is measured from its --version-dir)")
    budget = QUICK if args.quick else STANDARD
    rss_start = rss_bytes()
    make_run, inputs, batch = _from_checkpoint(args) if args.checkpoint else _from_version(args)
    result: dict[str, Any] = {"latency": measure(make_run(inputs(1)), budget).as_dict()}
    if not args.latency_only:
        result["throughput_rows_s"] = rows_per_second(measure(make_run(inputs(batch)), budget), batch)
        result["batch"] = batch
    result |= {"rss_start_bytes": rss_start, "peak_rss_bytes": _peak_rss_bytes()}
    json.dump(result, sys.stdout)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=("ort", "torch"), required=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--version-dir", type=Path, help="model version folder (inputs spec)")
    source.add_argument("--checkpoint", type=Path, help="a training checkpoint folder (--kind torch only)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--latency-only", action="store_true", help="batch-1 latency only, no throughput")
    return parser


def _from_version(args: argparse.Namespace) -> Model:
    """A published model version, ONNX Runtime or its family's PyTorch baseline, on inputs from its manifest."""
    manifest = read_manifest(args.version_dir)

    def inputs(batch: int) -> dict[str, np.ndarray]:
        return synthetic_inputs(manifest, batch)

    if args.kind == "ort":
        session = ort_session(args.version_dir / manifest.model_file, args.threads)
        return lambda feeds: ort_callable(session, feeds), inputs, throughput_batch(manifest, args.batch)
    from modelpress.export.compare.torch_source import load_baseline

    module = load_baseline(manifest)  # the checkpoint, or a text model's recorded package / folder
    return lambda feeds: torch_callable(module, feeds, args.threads), inputs, throughput_batch(manifest, args.batch)


def _from_checkpoint(args: argparse.Namespace) -> Model:
    """A checkpoint's module in PyTorch eager, on inputs of its recorded input spec (no manifest needed)."""
    from modelpress.training.checkpoint import load_checkpoint

    module, meta = load_checkpoint(args.checkpoint)

    def inputs(batch: int) -> dict[str, np.ndarray]:
        rng, shape = np.random.default_rng(0), (batch, *meta.input_spec.shape)
        if meta.input_spec.dtype == "int64":  # token ids
            return {meta.input_spec.name: rng.integers(0, 8, shape).astype(np.int64)}
        return {meta.input_spec.name: rng.standard_normal(shape).astype(np.float32)}

    return lambda feeds: torch_callable(module, feeds, args.threads), inputs, args.batch


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


if __name__ == "__main__":
    raise SystemExit(main())
