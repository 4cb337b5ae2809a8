"""Batch-1 latency of an ONNX model and of the PyTorch eager module, timed like ``modelpress compare`` does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from export.compare.runners import ort_callable, ort_session, torch_callable
from export.compare.timing import QUICK, STANDARD, measure


def batch1_latency_ms(model_path: Path, sample: np.ndarray, threads: int, *, quick: bool = False) -> float:
    """Median latency of one ``session.run`` on a single sample."""
    session = ort_session(model_path, threads)
    feeds = {session.get_inputs()[0].name: np.ascontiguousarray(sample[:1], dtype=np.float32)}
    return measure(ort_callable(session, feeds), QUICK if quick else STANDARD).p50_ms


def eager_latency_ms(module: Any, sample: np.ndarray, threads: int, *, quick: bool = False) -> float:
    """Median latency of the PyTorch module in eager fp32 under ``inference_mode`` on a single sample."""
    import torch

    previous = torch.get_num_threads()
    try:
        run = torch_callable(module, {"input": np.ascontiguousarray(sample[:1], dtype=np.float32)}, threads)
        return measure(run, QUICK if quick else STANDARD).p50_ms
    finally:
        torch.set_num_threads(previous)
