"""Request bodies for the load generator: V2 JSON, V2 binary tensor extension, and plain JSON for baselines.

Numeric arrays become FP32/FP64/INT32/INT64 tensors; arrays of ``str`` become BYTES tensors (texts), whose
binary form is each element's UTF-8 bytes behind a 4-byte little-endian length, as the extension says.
"""

from __future__ import annotations

import json
import struct

import numpy as np

from modelpress.benchmarks.loadgen import Payload

_V2_DATATYPES = {np.float32: "FP32", np.float64: "FP64", np.int64: "INT64", np.int32: "INT32", np.str_: "BYTES"}


def _datatype(array: np.ndarray) -> str:
    try:
        return _V2_DATATYPES[array.dtype.type]
    except KeyError:
        raise ValueError(
            f"no V2 datatype for numpy dtype {array.dtype} (expected one of {list(_V2_DATATYPES)})"
        ) from None


def _raw(array: np.ndarray) -> bytes:
    if array.dtype.type is np.str_:
        return b"".join(struct.pack("<I", len(s)) + s for s in (str(v).encode() for v in array.ravel()))
    return np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def v2_json(model: str, name: str, array: np.ndarray) -> Payload:
    body = {"inputs": [{"name": name, "shape": list(array.shape), "datatype": _datatype(array),
                        "data": array.ravel().tolist()}]}  # fmt: skip
    return Payload(f"/v2/models/{model}/infer", json.dumps(body).encode(), {"Content-Type": "application/json"}, "json")


def v2_binary(model: str, name: str, array: np.ndarray, output: str | None = None) -> Payload:
    """The binary tensor extension: a JSON header then the raw little-endian tensor bytes."""
    raw = _raw(array)
    header: dict[str, object] = {"inputs": [{"name": name, "shape": list(array.shape), "datatype": _datatype(array),
                                             "parameters": {"binary_data_size": len(raw)}}]}  # fmt: skip
    if output is not None:
        header["outputs"] = [{"name": output, "parameters": {"binary_data": True}}]
    head = json.dumps(header).encode()
    headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))}
    return Payload(f"/v2/models/{model}/infer", head + raw, headers, "binary")


def plain_json(path: str, array: np.ndarray) -> Payload:
    """What a hand-written server takes: ``{"instances": [[...], ...]}``."""
    body = json.dumps({"instances": array.tolist()}).encode()
    return Payload(path, body, {"Content-Type": "application/json"}, "json")
