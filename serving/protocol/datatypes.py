"""Open Inference Protocol datatypes and their numpy and ONNX Runtime counterparts."""

from __future__ import annotations

import numpy as np

V2_TO_NUMPY: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}

# ONNX Runtime's type strings (NodeArg.type) for the same tensors.
ORT_TO_V2: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


_NUMPY_TO_V2 = {np.dtype(dtype): name for name, dtype in reversed(V2_TO_NUMPY.items()) if name != "BYTES"}


def numpy_to_v2(dtype: np.dtype) -> str:
    """V2 name of a numpy dtype; strings and objects are BYTES."""
    if dtype.kind in "OSU":
        return "BYTES"
    found = _NUMPY_TO_V2.get(dtype)  # one hash lookup per output on the hot path, not a scan of ~10 compares
    if found is not None:
        return found
    for name, candidate in V2_TO_NUMPY.items():
        if candidate == dtype:
            return name
    raise ValueError(f"numpy dtype {dtype} has no Open Inference Protocol datatype")


def element_size(datatype: str) -> int:
    """Bytes per element of a fixed-size datatype (BYTES has no fixed size: 0)."""
    return 0 if datatype == "BYTES" else V2_TO_NUMPY[datatype].itemsize
