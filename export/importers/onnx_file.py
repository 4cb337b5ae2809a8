"""An ONNX file from any producer (skl2onnx, torch.onnx, tf2onnx, Optimum...), external data beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modelpress.export.importers.base import ImportSourceError, SourceModel, brief, onnx_facts, sha256_of
from modelpress.export.onnx_files import save_model
from modelpress.export.ort_session import cpu_session
from modelpress.serving.graph_manifest import tensor_spec_of
from modelpress.serving.manifest import ManifestError

# The first byte of a serialized ModelProto: field 1 (ir_version), varint.
_MODEL_PROTO_START = 0x08


def load_onnx_file(path: Path, work: Path) -> SourceModel:
    """Check that ONNX Runtime loads ``path`` and copy it (with its external data) into ``work``.

    Raises:
        ImportSourceError: not ONNX, truncated, external data missing, or an opset ONNX Runtime does not run.
    """
    proto = _parse(path)
    facts = onnx_facts(path)
    session = _session(path, facts.get("opset"))
    if not session.get_inputs():
        raise ImportSourceError(f"{path}: the graph has no inputs")
    _check_tensors(path, session)
    # "auto", not "always" for a source with external data: "always" moves every tensor out, small constants
    # (a ReduceMean's axes) included, and ORT's shape inference then refuses the graph. Weights of up to
    # AUTO_EXTERNAL_BYTES go inline; larger ones stay external.
    copied = save_model(proto, work / "source", external="auto")
    original = path

    def run_source(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return session.run(None, feeds)

    record = {"kind": "onnx", "file": original.name, "sha256": sha256_of(original), **facts}
    return SourceModel(kind="onnx", path=original, onnx_path=copied, run_source=run_source, record=record)


def _parse(path: Path):
    import onnx
    from google.protobuf.message import DecodeError

    if not path.is_file():
        raise ImportSourceError(f"{path}: not a file")
    head = path.read_bytes()[:1]
    try:
        proto = onnx.load(str(path))
    except DecodeError as e:
        what = "a truncated or corrupt ONNX file" if head == bytes([_MODEL_PROTO_START]) else "not an ONNX file"
        raise ImportSourceError(f"{path}: {what} (protobuf could not parse it: {brief(e)})") from e
    except (FileNotFoundError, onnx.checker.ValidationError) as e:  # external data named but not beside it
        raise ImportSourceError(f"{path}: its external data cannot be read: {brief(e)}") from e
    except Exception as e:  # onnx raises plain RuntimeError/ValueError for other damage
        raise ImportSourceError(f"{path}: not a readable ONNX model: {type(e).__name__}: {brief(e)}") from e
    if proto.ir_version == 0 or not proto.HasField("graph") or not proto.graph.node:
        raise ImportSourceError(f"{path}: not an ONNX model (no IR version or no graph nodes)")
    return proto


def _session(path: Path, opset: int | None):
    import onnx
    import onnxruntime as ort

    try:
        return cpu_session(path, threads=1, level="disabled")
    except Exception as e:  # ORT's pybind errors: unsupported opset, unknown op, invalid graph
        newest = onnx.defs.onnx_opset_version()
        if opset is not None and (opset > newest or "opset" in str(e).lower()):
            raise ImportSourceError(
                f"{path}: opset {opset} is not supported by ONNX Runtime {ort.__version__} "
                f"(the onnx package here knows opsets up to {newest}); re-export with a lower opset ({brief(e)})"
            ) from e
        raise ImportSourceError(f"{path}: ONNX Runtime {ort.__version__} cannot load it: {brief(e)}") from e


def _check_tensors(path: Path, session) -> None:
    """Every input and output must be a tensor the server can carry (not skl2onnx's ZipMap, for one)."""
    try:
        for kind, args in (("input", session.get_inputs()), ("output", session.get_outputs())):
            for arg in args:
                tensor_spec_of(path, kind, arg)
    except ManifestError as e:
        raise ImportSourceError(str(e)) from e
