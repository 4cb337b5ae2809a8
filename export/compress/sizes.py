"""What a model costs on disk: parameters, nonzero parameters, raw ONNX bytes (external data included), gzip bytes.

Unstructured sparsity stores zeros densely, so raw bytes do not move while gzip bytes and nonzero parameters
do: every figure is reported side by side so a reader sees which kind of compression happened.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

from torch import nn


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_nonzero_parameters(model: nn.Module) -> int:
    """Nonzero entries of every parameter (pruning masks already applied, see :func:`effective_weights`)."""
    return sum(int(t.count_nonzero()) for t in effective_weights(model).values())


def effective_weights(model: nn.Module) -> dict[str, Any]:
    """Every parameter as the forward pass sees it: ``weight_orig * weight_mask`` while a pruning mask is on."""
    weights: dict[str, Any] = {}
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            tensor = param.detach()
            if name.endswith("_orig") and hasattr(module, name.removesuffix("_orig") + "_mask"):
                name = name.removesuffix("_orig")
                tensor = tensor * getattr(module, f"{name}_mask")
            weights[f"{module_name}.{name}" if module_name else name] = tensor
    return weights


def onnx_files(model_path: Path) -> list[Path]:
    """The graph file and every external-data file its initializers point to."""
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
    """Raw bytes of the graph plus its external data."""
    return sum(p.stat().st_size for p in onnx_files(model_path))


def gzip_bytes(model_path: Path, level: int = 6) -> int:
    """Bytes after gzip of the graph plus its external data: what runs of pruned zeros save."""
    return sum(len(gzip.compress(p.read_bytes(), compresslevel=level)) for p in onnx_files(model_path))


def size_info(model: nn.Module | None, model_path: Path) -> dict[str, int | None]:
    """The manifest's ``size`` fields for an exported model (parameter counts need the torch module)."""
    return {
        "onnx_bytes": onnx_bytes(model_path),
        "gzip_bytes": gzip_bytes(model_path),
        "parameters": count_parameters(model) if model is not None else None,
        "nonzero_parameters": count_nonzero_parameters(model) if model is not None else None,
    }
