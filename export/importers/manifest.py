"""The manifest of one imported variant: what the graph takes and gives, lineage from the import, quality."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelpress.export.importers.base import SourceModel, Task
from modelpress.export.manifest_builder import size_info, tool_versions
from modelpress.serving.manifest import ModelManifest, PassRecord, TensorSpec, TokenizerSpec

TEXT_INPUT = "text"


def import_record(source: SourceModel, seconds: float | None) -> PassRecord:
    """The first lineage entry: the source's kind, file name, sha256, producer and opset."""
    return PassRecord(name="import", config=source.record, seconds=seconds)


def build_import_manifest(
    *,
    name: str,
    family: str,
    variant: str,
    model_path: Path,
    precision: str,
    task: Task,
    lineage: list[PassRecord],
    quality: dict[str, Any],
    source: SourceModel,
    graph_inputs: list[TensorSpec],
    graph_outputs: list[TensorSpec],
) -> ModelManifest:
    """A manifest like an exported variant's; a text model takes text (its tokenizer travels with it)."""
    text = source.text
    inputs = [TensorSpec(name=TEXT_INPUT, datatype="BYTES", shape=[-1])] if text else graph_inputs
    extra = {"graph_inputs": [s.model_dump() for s in graph_inputs]} if text else {}  # compare feeds the graph
    return ModelManifest(
        **extra,
        name=name,
        version=1,  # the repository sets the real number when it commits the version
        task=task,
        precision=precision,
        inputs=inputs,
        outputs=graph_outputs,
        labels=source.labels,
        tokenizer=TokenizerSpec(file=text.tokenizer_file.name, max_length=text.max_length) if text else None,
        lineage=lineage,
        size=size_info(model_path, source.module),
        quality=quality,
        tool_versions=tool_versions(),
        source={
            "family": family,
            "variant": variant,
            "imported": str(source.path.resolve()),
            "kind": source.kind,
            "sha256": source.record.get("sha256"),
        },
    )
