"""A model's files and what it costs: raw and gzip bytes (external data included), parameters, nonzero ones.

The one home of these figures: the manifest builder, ``compare`` and the
compression search all use it, so every size in a report is taken the same way (gzip at :data:`GZIP_LEVEL`).

Unstructured sparsity stores zeros densely, so raw bytes do not move while gzip bytes and nonzero parameters
do: every figure is reported side by side so a reader sees which kind of compression happened.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from modelpress.serving.manifest import SizeInfo

# One level for every gzip figure (a figure at level 1 beside one at level 6 compares nothing).
GZIP_LEVEL = 6


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_nonzero_parameters(model: nn.Module) -> int:
    """Nonzero entries of every parameter (pruning masks already applied, see :func:`effective_weights`)."""
    return sum(int(t.count_nonzero()) for t in effective_weights(model).values())


def effective_weights(model: nn.Module) -> dict[str, Any]:
    """Every parameter as the forward pass sees it: ``weight_orig * weight_mask`` while a pruning mask is on."""
    if not hasattr(model, "named_modules"):  # a torch.export program: parameters, no submodules or masks
        return {str(i): param.detach() for i, param in enumerate(model.parameters())}
    weights: dict[str, Any] = {}
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            tensor = param.detach()
            if name.endswith("_orig") and hasattr(module, name.removesuffix("_orig") + "_mask"):
                name = name.removesuffix("_orig")
                tensor = tensor * getattr(module, f"{name}_mask")
            weights[f"{module_name}.{name}" if module_name else name] = tensor
    return weights


def model_files(model_path: Path) -> list[Path]:
    """The graph file and every external-data file its initializers (subgraphs' too) point to."""
    import onnx

    model_path = Path(model_path)
    proto = onnx.load(str(model_path), load_external_data=False)
    locations = {
        entry.value
        for tensor in _initializers(proto.graph)
        for entry in tensor.external_data
        if entry.key == "location"
    }
    return [model_path, *sorted(model_path.parent / loc for loc in locations)]


def _initializers(graph: Any) -> list[Any]:
    """Initializers of ``graph`` and of every subgraph (If/Loop bodies)."""
    tensors = list(graph.initializer)
    for node in graph.node:
        for attr in node.attribute:
            subgraphs = [attr.g] if attr.HasField("g") else list(attr.graphs)
            for sub in subgraphs:
                tensors += _initializers(sub)
    return tensors


def onnx_bytes(model_path: Path) -> int:
    """Raw bytes of the graph plus its external data (a size that ignores external data is wrong)."""
    return sum(p.stat().st_size for p in model_files(model_path))


def gzip_bytes(model_path: Path) -> int:
    """Bytes after gzip (:data:`GZIP_LEVEL`) of the graph plus its external data: what runs of zeros save."""
    return sum(len(gzip.compress(p.read_bytes(), compresslevel=GZIP_LEVEL)) for p in model_files(model_path))


def onnx_parameters(model_path: Path) -> tuple[int, int]:
    """Elements and nonzero elements of the model's float initializers (for a model without a PyTorch source)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(model_path))
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16)
    arrays = [numpy_helper.to_array(t) for t in _initializers(proto.graph) if t.data_type in floats]
    return sum(int(a.size) for a in arrays), sum(int(np.count_nonzero(a)) for a in arrays)


def size_info(model_path: Path, module: nn.Module | None) -> SizeInfo:
    """The manifest's ``size``: bytes of the model files, parameters of its PyTorch source (else its ONNX weights)."""
    from modelpress.serving.manifest import SizeInfo

    if module is not None:
        parameters, nonzero = count_parameters(module), count_nonzero_parameters(module)
    else:
        parameters, nonzero = onnx_parameters(model_path)
    return SizeInfo(
        onnx_bytes=onnx_bytes(model_path),
        gzip_bytes=gzip_bytes(model_path),
        gzip_level=GZIP_LEVEL,
        parameters=parameters,
        nonzero_parameters=nonzero,
    )
