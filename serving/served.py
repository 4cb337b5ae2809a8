"""A model version being served: its manifest, runtime, batcher and statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from modelpress.serving.batching.batcher import Batcher
from modelpress.serving.manifest import ModelManifest
from modelpress.serving.metrics import ModelSeries
from modelpress.serving.runtime.base import ModelRuntime
from modelpress.serving.stats import ModelStats

PLATFORM = "onnx_onnxv1"


@dataclass
class ServedModel:
    manifest: ModelManifest
    version_dir: Path
    runtime: ModelRuntime
    size_bytes: int
    memory_bytes: int
    series: ModelSeries  # its metric series, looked up once at load
    batcher: Batcher | None = None
    stats: ModelStats = field(default_factory=ModelStats)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return str(self.manifest.version)

    @property
    def batchable(self) -> bool:
        """Rows can be joined when every input and output has a dynamic first dimension."""
        specs = [*self.manifest.inputs, *self.manifest.outputs]
        return all(s.shape[:1] == [-1] for s in specs)
