"""Assemble the :class:`~modelpress.serving.manifest.ModelManifest` of one exported variant, for any family."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelpress.export.sizes import size_info
from modelpress.export.verify import tensor_specs
from modelpress.serving.manifest import ModelManifest, PassRecord, Preprocessing, TensorSpec, TokenizerSpec

if TYPE_CHECKING:
    from modelpress.export.passes.base import OnnxHandle
    from modelpress.training.checkpoint import CheckpointMeta

_TOOLS = ("torch", "onnx", "onnxruntime", "onnxscript", "numpy", "transformers", "modelpress")


@dataclass(frozen=True)
class ServingContract:
    """What every variant of a chain declares besides its graph: the task and how clients call it.

    Attributes:
        task: classification, regression or embedding.
        inputs: the served inputs (None: the graph's own, e.g. a tensor ``input``); a text model serves BYTES.
        outputs: the served outputs (None: the graph's own).
        graph_inputs: the graph's inputs when they differ from the served ones (token ids and mask).
        labels, preprocessing, tokenizer: what the server applies around the graph.
        extra_files: files copied into each version folder (hashed with the model), e.g. ``tokenizer.json``.
        source: where the chain's model came from (checkpoint, package, corpus), recorded in the manifest.
    """

    task: str
    inputs: list[TensorSpec] | None = None
    outputs: list[TensorSpec] | None = None
    graph_inputs: list[dict[str, Any]] | None = None
    labels: list[str] | None = None
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    tokenizer: TokenizerSpec | None = None
    extra_files: tuple[Path, ...] = ()
    source: dict[str, Any] = field(default_factory=dict)


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for tool in _TOOLS:
        try:
            versions[tool] = metadata.version(tool)
        except metadata.PackageNotFoundError:
            continue  # e.g. modelpress run from a source tree without an install
    return versions


def training_record(meta: CheckpointMeta) -> PassRecord:
    """The first lineage entry of a recipe-trained model: the architecture and how it was trained."""
    return PassRecord(
        name="train",
        config={"architecture": meta.architecture, "arch_config": meta.arch_config},
        seconds=meta.training.get("seconds"),
    )


def checkpoint_contract(meta: CheckpointMeta, checkpoint: Path) -> ServingContract:
    """The contract of a recipe-trained tensor model: its graph's tensors, labels and preprocessing."""
    return ServingContract(
        task=meta.task,
        labels=meta.labels,
        preprocessing=Preprocessing(**meta.preprocessing.model_dump()),
        source={
            "checkpoint": str(checkpoint.resolve()),
            "weights_sha256": meta.weights_sha256,
            "architecture": meta.architecture,
            "checkpoint_metrics": meta.metrics.get("test", {}),
            **({"feature_names": meta.data["feature_names"]} if meta.data.get("feature_names") else {}),
        },
    )


def build_manifest(
    *,
    name: str,
    family: str,
    variant: str,
    model: OnnxHandle,
    precision: str,
    lineage: list[PassRecord],
    quality: dict[str, Any],
    contract: ServingContract,
) -> ModelManifest:
    """The manifest of one variant: the contract's fields, the graph's tensors, sizes, lineage and quality."""
    inputs, outputs = tensor_specs(model.path)
    extra: dict[str, Any] = {}
    if contract.graph_inputs is not None:
        extra["graph_inputs"] = contract.graph_inputs
    return ModelManifest(
        name=name,
        version=1,  # the repository sets the real number when it commits the version
        task=contract.task,
        precision=precision,
        inputs=contract.inputs if contract.inputs is not None else [TensorSpec(**spec) for spec in inputs],
        outputs=contract.outputs if contract.outputs is not None else [TensorSpec(**spec) for spec in outputs],
        labels=contract.labels,
        preprocessing=contract.preprocessing,
        tokenizer=contract.tokenizer,
        lineage=lineage,
        size=size_info(model.path, model.source.module if model.source is not None else None),
        quality=quality,
        tool_versions=tool_versions(),
        source={**contract.source, "family": family, "variant": variant},
        **extra,
    )
