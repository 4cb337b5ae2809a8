"""A model version being served: its manifest, runtime, batcher and statistics."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from modelpress.serving.batching.batcher import Batcher
from modelpress.serving.manifest import ModelManifest
from modelpress.serving.metrics import ModelSeries
from modelpress.serving.runtime.base import ModelRuntime

PLATFORM = "onnx_onnxv1"


@dataclass
class ModelStats:
    """Cumulative counters in Triton's statistics-extension shape (durations in ns)."""

    success_count: int = 0
    success_ns: int = 0
    fail_count: int = 0
    fail_ns: int = 0
    queue_count: int = 0
    queue_ns: int = 0
    compute_count: int = 0
    compute_ns: int = 0
    inference_count: int = 0
    execution_count: int = 0
    last_inference_ms: int = 0

    def request_done(self, ok: bool, seconds: float) -> None:
        ns = int(seconds * 1e9)
        if ok:
            self.success_count += 1
            self.success_ns += ns
        else:
            self.fail_count += 1
            self.fail_ns += ns
        self.last_inference_ms = int(time.time() * 1000)

    def queued(self, seconds: float) -> None:
        self.queue_count += 1
        self.queue_ns += int(seconds * 1e9)

    def batch_done(self, rows: int, seconds: float) -> None:
        self.compute_count += 1
        self.compute_ns += int(seconds * 1e9)
        self.inference_count += rows
        self.execution_count += 1


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
