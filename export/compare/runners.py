"""Callables that run one model on fixed inputs: ONNX Runtime sessions and PyTorch eager modules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from serving.manifest import ModelManifest, TensorSpec

_NUMPY_DTYPES = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
}  # fmt: skip


def concrete_shape(spec: TensorSpec, batch: int, dynamic: int) -> list[int]:
    """Replace the first dynamic dim by ``batch`` and any other dynamic dim by ``dynamic``."""
    shape = [batch if (i == 0 and d == -1) else (dynamic if d == -1 else d) for i, d in enumerate(spec.shape)]
    return shape


def synthetic_inputs(manifest: ModelManifest, batch: int, *, dynamic: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs of the manifest's declared names, types and shapes.

    Floats are standard normal, as the preprocessed features a trained model sees are.
    """
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for spec in manifest.inputs:
        if spec.datatype == "BYTES":
            raise ValueError(f"input {spec.name!r} is BYTES (text); synthetic numeric inputs do not apply")
        shape = concrete_shape(spec, batch, dynamic)
        dtype = _NUMPY_DTYPES[spec.datatype]
        if np.issubdtype(dtype, np.floating):
            feeds[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype is np.bool_:
            feeds[spec.name] = rng.integers(0, 2, shape).astype(np.bool_)
        else:
            feeds[spec.name] = rng.integers(0, 8, shape).astype(dtype)
    return feeds


def ort_session(model_path: Path, threads: int) -> Any:
    """A CPU InferenceSession with ``threads`` intra-op threads and one inter-op thread."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def ort_callable(session: Any, feeds: dict[str, np.ndarray]) -> Callable[[], object]:
    def run() -> object:
        return session.run(None, feeds)

    return run


def torch_callable(module: Any, feeds: dict[str, np.ndarray], threads: int) -> Callable[[], object]:
    """Eager PyTorch fp32 under ``inference_mode``: what a user would run without modelpress."""
    import torch

    torch.set_num_threads(threads)
    tensors = [torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values()]
    module.eval()

    def run() -> object:
        with torch.inference_mode():
            return module(*tensors)

    return run
