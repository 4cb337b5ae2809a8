"""Reading and writing ONNX models whose weights may live in an external-data file beside the graph."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx

MODEL_NAME = "model.onnx"
EXTERNAL_DATA_NAME = "model.onnx.data"
# Above this many initializer bytes the weights go to model.onnx.data: protobuf cannot hold a 2 GiB file.
AUTO_EXTERNAL_BYTES = 512 * 1024 * 1024


def initializer_bytes(model: onnx.ModelProto) -> int:
    """Bytes of every initializer's data, whether stored inline or (already loaded) from external data."""
    return sum(len(t.raw_data) if t.raw_data else t.ByteSize() for t in model.graph.initializer)


def has_external_data(model_path: Path) -> bool:
    proto = onnx.load(str(model_path), load_external_data=False)
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)


def save_model(model: onnx.ModelProto, out_dir: Path, *, external: str = "auto") -> Path:
    """Save ``model`` as ``out_dir/model.onnx`` (+ ``model.onnx.data`` when external) and return the path.

    Args:
        model: a model whose external data, if any, is already loaded into memory.
        out_dir: created if missing; a previous model there is replaced.
        external: ``"always"``, ``"never"`` or ``"auto"`` (external above :data:`AUTO_EXTERNAL_BYTES`).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / MODEL_NAME
    # Intermediate shapes are recomputed by every runtime at load; storing them only adds bytes.
    del model.graph.value_info[:]
    (out_dir / EXTERNAL_DATA_NAME).unlink(missing_ok=True)
    as_external = external == "always" or (external == "auto" and initializer_bytes(model) > AUTO_EXTERNAL_BYTES)
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=as_external,
        all_tensors_to_one_file=True,
        location=EXTERNAL_DATA_NAME,
        size_threshold=0 if as_external else 1024,
    )
    return path


def copy_model(model_path: Path, out_dir: Path) -> Path:
    """Copy the graph and its external data into ``out_dir`` (relative locations keep working)."""
    from modelpress.export.sizes import model_files

    out_dir.mkdir(parents=True, exist_ok=True)
    for path in model_files(model_path):
        shutil.copy2(path, out_dir / path.relative_to(model_path.parent))
    return out_dir / model_path.name


def strip_node_metadata(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop per-node metadata (the dynamo exporter records Python stack traces: ~20 KB on a small CNN).

    It carries the exporting machine's source paths and inflates the graph without serving any runtime.
    """
    for node in model.graph.node:
        del node.metadata_props[:]
    return model


def strip_export_metadata(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop what the exporter records for debugging and no runtime reads, and opset imports no node uses.

    Besides the per-node stack traces: the ``torch.export`` graph signature on the graph and on its inputs
    and outputs, and imports of domains like ``ai.onnx.training``. About 1.4 KB on any model, which is a fifth
    of a model the size of the digits CNN student (docs/benchmarks.md).
    """
    strip_node_metadata(model)
    graph = model.graph
    del graph.metadata_props[:]
    for value in (*graph.input, *graph.output):
        del value.metadata_props[:]
    return drop_unused_opsets(model)


def drop_unused_opsets(model: onnx.ModelProto) -> onnx.ModelProto:
    """Keep only the opset imports some node uses (and the default domain); ORT's saved graphs list them all."""
    used = {node.domain or "" for node in model.graph.node}
    for function in model.functions:
        used |= {node.domain or "" for node in function.node} | {function.domain}
    keep = [o for o in model.opset_import if (o.domain or "") in used or o.domain in ("", "ai.onnx")]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    return model
