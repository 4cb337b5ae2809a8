"""KServe V1 (``{"instances": [...]}``) to tensors and back, with the manifest's preprocessing.

Instances become a V2 :class:`RequestInput` so both protocols share one validation path.
"""

from __future__ import annotations

import math

import numpy as np

from modelpress.serving.errors import BadRequestError
from modelpress.serving.manifest import ModelManifest, TensorSpec
from modelpress.serving.protocol.types import RequestInput


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def instances_to_input(spec: TensorSpec, column: list) -> RequestInput:
    """Build a V2 input from V1 instances so both endpoints share one validation path."""
    if spec.datatype == "BYTES":
        return RequestInput(
            name=spec.name, shape=[len(column), *([1] * (len(spec.shape) - 1))], datatype="BYTES", data=column
        )
    shape = nested_shape(column)
    fixed = [d for d in spec.shape[1:] if d != -1]
    features = math.prod(shape[1:])
    if shape[1:] != spec.shape[1:] and len(fixed) == len(spec.shape) - 1 and features == math.prod(fixed):
        shape = [shape[0], *spec.shape[1:]]  # e.g. flat 64 features for a [-1, 1, 8, 8] input, or 8x8 for [-1, 64]
    return RequestInput(name=spec.name, shape=shape, datatype=spec.datatype, data=column)


def nested_shape(data: list) -> list[int]:
    """Shape of a nested list read along first elements; ragged data then fails the element count check."""
    shape = []
    node = data
    while isinstance(node, list):
        shape.append(len(node))
        if not node:
            break
        node = node[0]
    return shape


def standardize(manifest: ModelManifest, arr: np.ndarray) -> np.ndarray:
    """Apply the manifest's training-time preprocessing to input 0: ``(x - mean) / std`` per flat feature."""
    pre = manifest.preprocessing
    if pre.type != "standardize" or pre.mean is None or pre.std is None:
        return arr
    flat = arr.reshape(arr.shape[0], -1).astype(np.float64)
    if flat.shape[1] != len(pre.mean):
        raise BadRequestError(f"input has {flat.shape[1]} features per instance, preprocessing expects {len(pre.mean)}")
    std = np.asarray(pre.std, dtype=np.float64)
    std = np.where(std == 0, 1.0, std)  # a constant feature must not divide by zero
    out = (flat - np.asarray(pre.mean, dtype=np.float64)) / std
    return out.astype(arr.dtype).reshape(arr.shape)


def predictions(m: ModelManifest, outputs: dict[str, np.ndarray]) -> list:
    """Per instance: label + softmax probabilities for classifiers, else the output row(s)."""
    if m.task == "classification" and "logits" in outputs:
        probs = softmax(outputs["logits"].reshape(outputs["logits"].shape[0], -1))
        labels = m.labels or [str(i) for i in range(probs.shape[1])]
        return [
            {"label": labels[int(row.argmax())], "probabilities": dict(zip(labels, row.tolist(), strict=False))}
            for row in probs
        ]
    if len(outputs) == 1:
        return _rows_of(next(iter(outputs.values())))
    per_output = {n: _rows_of(a) for n, a in outputs.items()}
    count = len(next(iter(per_output.values())))
    return [{n: v[i] for n, v in per_output.items()} for i in range(count)]


def _rows_of(arr: np.ndarray) -> list:
    if arr.dtype.kind in "OS":
        arr = np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else v, otypes=[object])(arr)
    return arr.tolist()
