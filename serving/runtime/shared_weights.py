"""Embedding tables held once per process when several served versions carry the same bytes.

A distilled student keeps its teacher's token-embedding table (the distillation freezes it), and the int8
variants of both quantize it alike, so a repository with MiniLM and its student holds the same 45 MiB (fp32) or
11 MiB (int8) table twice. ONNX Runtime copies every initializer into each session; given the table as a
user-owned initializer (``SessionOptions.add_initializer``) it uses that buffer instead, so sessions whose
tables hash alike share one.

Only tables read by lookup ops (``Gather``, ``EmbedLayerNormalization``) are shared: ops that pre-pack their
weights (``MatMul``, ``Attention``) would keep a packed copy besides the shared one. Float16 tables are left to
ONNX Runtime on the CPU provider, which converts them to float32 at load, so sharing them saves nothing.

The server does not import ``onnx``; :func:`scan_initializers` reads the few protobuf fields it needs from the
file itself (the ONNX wire format is stable: field numbers are part of onnx.proto's compatibility promise).
"""

from __future__ import annotations

import functools
import hashlib
import mmap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelpress.serving.shared import SharedByKey

# onnx.proto field numbers (ModelProto.graph; GraphProto.node / .initializer; NodeProto.input / .op_type;
# TensorProto.dims / .data_type / .name / .raw_data / .data_location).
_MODEL_GRAPH = 7
_GRAPH_NODE, _GRAPH_INITIALIZER = 1, 5
_NODE_INPUT, _NODE_OP_TYPE = 1, 4
_TENSOR_DIMS, _TENSOR_DATA_TYPE, _TENSOR_NAME, _TENSOR_RAW_DATA, _TENSOR_LOCATION = 1, 2, 8, 9, 14

# TensorProto.DataType → numpy (little-endian, as raw_data is); FLOAT16 (10) deliberately absent, see above.
_NUMPY = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32, 7: np.int64,
          9: np.bool_, 11: np.float64, 12: np.uint32, 13: np.uint64}  # fmt: skip
LOOKUP_OPS = frozenset({"Gather", "EmbedLayerNormalization"})
MIN_SHARED_BYTES = 1 << 20  # below this the bookkeeping is not worth it


@dataclass(frozen=True)
class InitializerRef:
    """Where one initializer's inline bytes sit in the model file, and which ops read it."""

    name: str
    data_type: int
    dims: tuple[int, ...]
    offset: int
    length: int
    consumers: frozenset[str]


class ScanError(ValueError):
    """The file is not the protobuf an ONNX model is (ONNX Runtime will say more when it loads it)."""


def _varint(buf: memoryview | mmap.mmap, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise ScanError(f"truncated or malformed varint at byte {pos}")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf, start: int, end: int):
    """(field number, wire type, value or (offset, length)) for each field of the message in buf[start:end]."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield number, wire, value
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise ScanError(f"field {number} runs past its message (byte {pos}, length {length})")
            yield number, wire, (pos, length)
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ScanError(f"unsupported protobuf wire type {wire} at byte {pos}")


def _text(buf, span: tuple[int, int]) -> str:
    offset, length = span
    return bytes(buf[offset : offset + length]).decode("utf-8", errors="replace")


def _tensor(buf, span: tuple[int, int]) -> tuple[str, int, tuple[int, ...], tuple[int, int] | None]:
    name, data_type, dims, raw, external = "", 0, [], None, False
    for number, wire, value in _fields(buf, span[0], span[0] + span[1]):
        if number == _TENSOR_NAME and wire == 2:
            name = _text(buf, value)
        elif number == _TENSOR_DATA_TYPE and wire == 0:
            data_type = value
        elif number == _TENSOR_DIMS and wire == 0:
            dims.append(value)
        elif number == _TENSOR_DIMS and wire == 2:  # packed
            pos, end = value[0], value[0] + value[1]
            while pos < end:
                dim, pos = _varint(buf, pos, end)
                dims.append(dim)
        elif number == _TENSOR_RAW_DATA and wire == 2:
            raw = value
        elif number == _TENSOR_LOCATION and wire == 0:
            external = value == 1
    return name, data_type, tuple(dims), None if external else raw


def scan_initializers(path: Path, min_bytes: int = 0) -> list[InitializerRef]:
    """The main graph's initializers stored inline as ``raw_data`` of at least ``min_bytes``, with consumers.

    Raises:
        ScanError: the file is not an ONNX model's protobuf.
    """
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        return _scan(buf, path, min_bytes)


def _scan(buf: mmap.mmap, path: Path, min_bytes: int) -> list[InitializerRef]:
    graph = next((v for n, w, v in _fields(buf, 0, len(buf)) if n == _MODEL_GRAPH and w == 2), None)
    if graph is None:
        raise ScanError(f"{path}: no graph in the model")
    consumers: dict[str, set[str]] = {}
    found: list[tuple[str, int, tuple[int, ...], tuple[int, int]]] = []
    for number, wire, span in _fields(buf, graph[0], graph[0] + graph[1]):
        if wire != 2:
            continue
        if number == _GRAPH_NODE:
            inputs, op_type = [], ""
            for n, w, v in _fields(buf, span[0], span[0] + span[1]):
                if n == _NODE_INPUT and w == 2:
                    inputs.append(_text(buf, v))
                elif n == _NODE_OP_TYPE and w == 2:
                    op_type = _text(buf, v)
            for name in inputs:
                consumers.setdefault(name, set()).add(op_type)
        elif number == _GRAPH_INITIALIZER and span[1] >= min_bytes:
            name, data_type, dims, raw = _tensor(buf, span)
            if raw is not None and raw[1] >= min_bytes:
                found.append((name, data_type, dims, raw))
    return [
        InitializerRef(name, data_type, dims, raw[0], raw[1], frozenset(consumers.get(name, ())))
        for name, data_type, dims, raw in found
    ]


def shareable(refs: list[InitializerRef]) -> list[InitializerRef]:
    """The lookup tables among ``refs`` whose type and size make sharing worthwhile (see the module doc)."""
    out = []
    for ref in refs:
        dtype = _NUMPY.get(ref.data_type)
        if dtype is None or ref.length < MIN_SHARED_BYTES or not ref.consumers or not ref.consumers <= LOOKUP_OPS:
            continue
        if int(np.prod(ref.dims, dtype=np.int64)) * np.dtype(dtype).itemsize != ref.length:
            continue  # raw_data that does not fill the declared shape: ORT will refuse the model, not us
        out.append(ref)
    return out


class SharedTable:
    """One table's bytes as numpy and as the OrtValue sessions are given; alive while a session holds it."""

    def __init__(self, array: np.ndarray) -> None:
        import onnxruntime as ort

        self.array = array
        self.value = ort.OrtValue.ortvalue_from_numpy(array)

    @property
    def nbytes(self) -> int:
        return self.array.nbytes


class SharedWeights:
    """Content-addressed tables (sha256 of the bytes, dtype, shape), dropped when no session holds them."""

    def __init__(self) -> None:
        self._tables: SharedByKey[SharedTable] = SharedByKey()

    def __len__(self) -> int:
        return len(self._tables)

    def tables_for(self, path: Path) -> dict[str, SharedTable]:
        """The shareable tables of the model at ``path``, each the process's one copy of those bytes.

        Raises:
            ScanError: the file is not an ONNX model's protobuf.
        """
        out: dict[str, SharedTable] = {}
        with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            for ref in shareable(_scan(buf, path, MIN_SHARED_BYTES)):
                data = buf[ref.offset : ref.offset + ref.length]
                key = (hashlib.sha256(data).hexdigest(), ref.data_type, ref.dims)
                out[ref.name] = self._tables.get(key, functools.partial(_table, data, ref))
        return out


def _table(data: bytes, ref: InitializerRef) -> SharedTable:
    return SharedTable(np.frombuffer(data, dtype=_NUMPY[ref.data_type]).reshape(ref.dims))


# One per process: sessions of every repository and reload share it (ORT's own environment is process-wide too).
SHARED = SharedWeights()
