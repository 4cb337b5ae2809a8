"""Batch-1 latency of an ONNX model and of the PyTorch eager module, timed like ``modelpress compare`` does.

PyTorch eager is timed in a fresh process: in a process whose torch thread count changed before (training
at one thread, then timing at two), the 2-thread OpenMP pool was measured at ~88 ms per call instead of
~0.2 ms for the digits CNN, so an in-process figure would make every speed-up look hundreds of times better.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from export.compare.runners import ort_callable, ort_session, torch_callable
from export.compare.timing import QUICK, STANDARD, measure
from export.errors import ExportError


def batch1_latency_ms(model_path: Path, sample: np.ndarray, threads: int, *, quick: bool = False) -> float:
    """Median latency of one ``session.run`` on a single sample."""
    session = ort_session(model_path, threads)
    feeds = {session.get_inputs()[0].name: np.ascontiguousarray(sample[:1], dtype=np.float32)}
    return measure(ort_callable(session, feeds), QUICK if quick else STANDARD).p50_ms


def eager_latency_ms(checkpoint: Path, threads: int, *, quick: bool = False) -> float:
    """Median batch-1 latency of the checkpoint's module in PyTorch eager fp32, measured in a fresh process."""
    args = [sys.executable, "-m", "export.compress.timing", str(checkpoint), str(threads), "quick" if quick else "full"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ExportError(f"timing PyTorch eager failed: {tail}")
    return float(proc.stdout.strip().splitlines()[-1])


def _probe(checkpoint: Path, threads: int, quick: bool) -> float:
    from training.checkpoint import load_checkpoint

    module, meta = load_checkpoint(checkpoint)
    rng, shape = np.random.default_rng(0), (1, *meta.input_spec.shape)
    if meta.input_spec.dtype == "int64":  # token ids
        sample = rng.integers(0, 8, shape).astype(np.int64)
    else:
        sample = rng.standard_normal(shape).astype(np.float32)
    run = torch_callable(module, {"input": sample}, threads)
    return measure(run, QUICK if quick else STANDARD).p50_ms


if __name__ == "__main__":
    print(_probe(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "quick"))
