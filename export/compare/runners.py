"""Callables that run one model on fixed inputs: ONNX Runtime sessions and PyTorch eager modules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from modelpress.export.compare.timing import QUICK, STANDARD, measure
from modelpress.serving.manifest import ModelManifest, TensorSpec

_NUMPY_DTYPES = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
}  # fmt: skip


def concrete_shape(spec: TensorSpec, batch: int, dynamic: int) -> list[int]:
    """Replace the first dynamic dim by ``batch`` and any other dynamic dim by ``dynamic``."""
    shape = [batch if (i == 0 and d == -1) else (dynamic if d == -1 else d) for i, d in enumerate(spec.shape)]
    return shape


# Text models are served with a BYTES input and tokenised by the server; their ONNX graph takes token ids.
TEXT_SEQUENCE = 64
TEXT_BATCH = 8


def graph_inputs(manifest: ModelManifest) -> list[TensorSpec]:
    """The ONNX graph's own inputs: the served ones, or ``graph_inputs`` when the server tokenises text."""
    extra = (manifest.model_extra or {}).get("graph_inputs")
    if any(spec.datatype == "BYTES" for spec in manifest.inputs) and extra:
        return [TensorSpec.model_validate(spec) for spec in extra]
    return manifest.inputs


def is_text(manifest: ModelManifest) -> bool:
    return any(spec.datatype == "BYTES" for spec in manifest.inputs)


def throughput_batch(manifest: ModelManifest, batch: int) -> int:
    """The batch a throughput figure uses.

    ``batch``, but at most :data:`TEXT_BATCH` for a text model, whose batch of 64 sequences takes seconds.
    """
    return min(batch, TEXT_BATCH) if is_text(manifest) else batch


def synthetic_inputs(
    manifest: ModelManifest, batch: int, *, dynamic: int = TEXT_SEQUENCE, seed: int = 0
) -> dict[str, np.ndarray]:
    """Inputs of the graph's declared names, types and shapes.

    Floats are standard normal, as the preprocessed features a trained model sees are; token ids are drawn
    from the ordinary-word range of a BERT vocabulary, and attention masks are all ones (full sequences).
    """
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for spec in graph_inputs(manifest):
        if spec.datatype == "BYTES":
            raise ValueError(f"input {spec.name!r} is BYTES (text) and the manifest records no graph inputs")
        shape = concrete_shape(spec, batch, dynamic)
        dtype = _NUMPY_DTYPES[spec.datatype]
        if np.issubdtype(dtype, np.floating):
            feeds[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype is np.bool_:
            feeds[spec.name] = rng.integers(0, 2, shape).astype(np.bool_)
        elif "mask" in spec.name:
            feeds[spec.name] = np.ones(shape, dtype)
        elif "type" in spec.name:
            feeds[spec.name] = np.zeros(shape, dtype)
        elif "ids" in spec.name:
            feeds[spec.name] = rng.integers(2000, 8000, shape).astype(dtype)
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


def batch1_latency_ms(model_path: Path, sample: np.ndarray, threads: int, *, quick: bool = False) -> float:
    """Median latency of one ``session.run`` on a single (float32) sample, timed like ``compare`` times."""
    session = ort_session(model_path, threads)
    feeds = {session.get_inputs()[0].name: np.ascontiguousarray(sample[:1], dtype=np.float32)}
    return measure(ort_callable(session, feeds), QUICK if quick else STANDARD).p50_ms
