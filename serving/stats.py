"""Triton's statistics extension for one model version: cumulative counts and durations."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric


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

    @classmethod
    def from_metrics(cls, families: Iterable[Metric], model: str, version: str) -> ModelStats:
        """One model version's statistics from metric families (every worker's, ``serving/worker_metrics.py``).

        Success and failure come from the request-duration histogram by outcome (as :meth:`request_done`
        counts them: any status of 400 and up fails), queue and compute time from their histograms, rows
        inferred from the batch-size histogram's sum, the last inference from the ``max`` gauge of its time.
        """
        stats = cls()
        for family in families:
            for sample in family.samples:
                labels = sample.labels
                if labels.get("model") == model and labels.get("version") == version:
                    stats._add_sample(sample.name, labels.get("outcome"), sample.value)
        return stats

    def _add_sample(self, name: str, outcome: str | None, value: float) -> None:
        count, ns = int(value), int(value * 1e9)
        ok = outcome == "success"
        if name == "modelpress_request_duration_seconds_count":
            self.success_count, self.fail_count = self.success_count + count * ok, self.fail_count + count * (not ok)
        elif name == "modelpress_request_duration_seconds_sum":
            self.success_ns, self.fail_ns = self.success_ns + ns * ok, self.fail_ns + ns * (not ok)
        elif name == "modelpress_queue_duration_seconds_count":
            self.queue_count += count
        elif name == "modelpress_queue_duration_seconds_sum":
            self.queue_ns += ns
        elif name == "modelpress_compute_duration_seconds_count":
            self.compute_count += count
            self.execution_count += count
        elif name == "modelpress_compute_duration_seconds_sum":
            self.compute_ns += ns
        elif name == "modelpress_batch_size_rows_sum":
            self.inference_count += count
        elif name == "modelpress_last_inference_timestamp_seconds":
            self.last_inference_ms = max(self.last_inference_ms, int(value * 1000))
