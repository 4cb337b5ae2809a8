"""Request bodies for the load generator: V2 JSON, V2 binary tensor extension, and plain JSON for baselines."""

from __future__ import annotations

import json

import numpy as np

from benchmarks.loadgen import Payload

_V2_DATATYPES = {np.float32: "FP32", np.float64: "FP64", np.int64: "INT64", np.int32: "INT32"}


def v2_json(model: str, name: str, array: np.ndarray) -> Payload:
    body = {
        "inputs": [
            {
                "name": name,
                "shape": list(array.shape),
                "datatype": _V2_DATATYPES[array.dtype.type],
                "data": array.ravel().tolist(),
            }
        ]
    }
    return Payload(f"/v2/models/{model}/infer", json.dumps(body).encode(), {"Content-Type": "application/json"}, "json")


def v2_binary(model: str, name: str, array: np.ndarray, output: str | None = None) -> Payload:
    """The binary tensor extension: a JSON header then raw little-endian tensor bytes."""
    raw = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    header: dict[str, object] = {
        "inputs": [
            {
                "name": name,
                "shape": list(array.shape),
                "datatype": _V2_DATATYPES[array.dtype.type],
                "parameters": {"binary_data_size": len(raw)},
            }
        ]
    }
    if output is not None:
        header["outputs"] = [{"name": output, "parameters": {"binary_data": True}}]
    head = json.dumps(header).encode()
    headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))}
    return Payload(f"/v2/models/{model}/infer", head + raw, headers, "binary")


def plain_json(path: str, array: np.ndarray) -> Payload:
    """What a hand-written server takes: ``{"instances": [[...], ...]}``."""
    body = json.dumps({"instances": array.tolist()}).encode()
    return Payload(path, body, {"Content-Type": "application/json"}, "json")
