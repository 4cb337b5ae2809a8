"""Batch-1 latency of an ONNX model and of the PyTorch eager module, timed like ``modelpress compare`` does.

PyTorch eager is timed in a fresh process (:mod:`modelpress.export.compare.worker`, which says why): a search has
trained and exported in this process, with other torch thread counts, before it times anything.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modelpress.export.compare.runners import ort_callable, ort_session
from modelpress.export.compare.timing import QUICK, STANDARD, measure
from modelpress.export.compare.worker import WorkerError, measure_in_fresh_process
from modelpress.export.errors import ExportError


def batch1_latency_ms(model_path: Path, sample: np.ndarray, threads: int, *, quick: bool = False) -> float:
    """Median latency of one ``session.run`` on a single sample."""
    session = ort_session(model_path, threads)
    feeds = {session.get_inputs()[0].name: np.ascontiguousarray(sample[:1], dtype=np.float32)}
    return measure(ort_callable(session, feeds), QUICK if quick else STANDARD).p50_ms


def eager_latency_ms(checkpoint: Path, threads: int, *, quick: bool = False) -> float:
    """Median batch-1 latency of the checkpoint's module in PyTorch eager fp32, measured in a fresh process."""
    args = ["--kind", "torch", "--checkpoint", str(checkpoint), "--threads", str(threads), "--latency-only"]
    try:
        result = measure_in_fresh_process([*args, *(["--quick"] if quick else [])], timeout=600)
    except WorkerError as e:
        raise ExportError(f"timing PyTorch eager failed: {e}") from e
    return float(result["latency"]["p50_ms"])
