"""Assemble the :class:`~modelpress.serving.manifest.ModelManifest` of one exported variant."""

from __future__ import annotations

import gzip
import platform
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelpress.export.onnx_files import model_files
from modelpress.export.verify import tensor_specs
from modelpress.serving.manifest import ModelManifest, PassRecord, Preprocessing, SizeInfo, TensorSpec

if TYPE_CHECKING:
    from torch import nn

    from modelpress.training.checkpoint import CheckpointMeta

_TOOLS = ("torch", "onnx", "onnxruntime", "onnxscript", "numpy", "modelpress")


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for tool in _TOOLS:
        try:
            versions[tool] = metadata.version(tool)
        except metadata.PackageNotFoundError:
            continue  # e.g. modelpress run from a source tree without an install
    return versions


def size_info(model_path: Path, module: nn.Module | None) -> SizeInfo:
    """ONNX bytes include external data; gzip bytes show what sparsity would save; parameters from PyTorch.

    Without a module (an imported ONNX model) the parameter counts are left out.
    """
    files = model_files(model_path)
    params = [p.detach() for p in module.parameters()] if module is not None else None
    return SizeInfo(
        onnx_bytes=sum(p.stat().st_size for p in files),
        gzip_bytes=sum(len(gzip.compress(p.read_bytes(), compresslevel=6)) for p in files),
        parameters=int(sum(p.numel() for p in params)) if params is not None else None,
        nonzero_parameters=int(sum(int((p != 0).sum()) for p in params)) if params is not None else None,
    )


def training_record(meta: CheckpointMeta) -> PassRecord:
    """The first lineage entry: the architecture and how it was trained."""
    return PassRecord(
        name="train",
        config={"architecture": meta.architecture, "arch_config": meta.arch_config},
        seconds=meta.training.get("seconds"),
    )


def build_manifest(
    *,
    name: str,
    family: str,
    variant: str,
    model_path: Path,
    precision: str,
    lineage: list[PassRecord],
    quality: dict[str, Any],
    meta: CheckpointMeta,
    module: nn.Module,
    checkpoint: Path,
) -> ModelManifest:
    inputs, outputs = tensor_specs(model_path)
    return ModelManifest(
        name=name,
        version=1,  # the repository sets the real number when it commits the version
        task=meta.task,
        precision=precision,
        inputs=[TensorSpec(**spec) for spec in inputs],
        outputs=[TensorSpec(**spec) for spec in outputs],
        labels=meta.labels,
        preprocessing=Preprocessing(**meta.preprocessing.model_dump()),
        lineage=[training_record(meta), *lineage],
        size=size_info(model_path, module),
        quality=quality,
        tool_versions=tool_versions(),
        source={
            "checkpoint": str(checkpoint.resolve()),
            "weights_sha256": meta.weights_sha256,
            "family": family,
            "variant": variant,
            "architecture": meta.architecture,
            "checkpoint_metrics": meta.metrics.get("test", {}),
        },
    )
