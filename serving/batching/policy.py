"""How one model version batches: its manifest's ``batching`` over the server's settings."""

from __future__ import annotations

from dataclasses import dataclass

from modelpress.serving.manifest import BatchingConfig, ModelManifest
from modelpress.serving.settings import Settings


@dataclass(frozen=True)
class BatchPolicy:
    max_batch_size: int
    max_queue_delay_us: int
    max_queue_size: int

    @property
    def max_queue_delay_s(self) -> float:
        return self.max_queue_delay_us / 1e6


def batch_policy(manifest: ModelManifest, settings: Settings) -> BatchPolicy:
    """The model's own values where its manifest sets them, the server's elsewhere; one row, no wait when off."""
    own = manifest.batching or BatchingConfig()
    queue = own.max_queue_size or settings.max_queue_size
    if not settings.dynamic_batching:
        return BatchPolicy(max_batch_size=1, max_queue_delay_us=0, max_queue_size=queue)
    return BatchPolicy(
        max_batch_size=own.max_batch_size or settings.max_batch_size,
        max_queue_delay_us=settings.max_queue_delay_us if own.max_queue_delay_us is None else own.max_queue_delay_us,
        max_queue_size=queue,
    )
