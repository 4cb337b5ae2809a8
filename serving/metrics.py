"""Prometheus metrics of one app, on a registry the app owns (tests need no global cleanup).

Names are fixed (the deployment's dashboards and autoscaling rely on them); see docs/serving.md.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from modelpress.serving.stats import ModelStats
from modelpress.serving.worker_metrics import WorkersCollector

log = logging.getLogger("modelpress.serving.metrics")

ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
MODEL = ("model", "version")
REQUEST = ("model", "version", "protocol", "outcome")


def outcome_of(status: int) -> str:
    """Success / client_error / server_error / rejected (503: not ready, draining or queue full)."""
    if status < 400:
        return "success"
    if status == 503:
        return "rejected"
    return "client_error" if status < 500 else "server_error"


class GpuMemoryCollector(Collector):
    """GPU memory per device through NVML, read at scrape time; no samples where NVML or a GPU is absent."""

    def __init__(self) -> None:
        self._nvml = _init_nvml()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        used = GaugeMetricFamily("modelpress_gpu_memory_used_bytes", "GPU memory in use per device.", labels=["device"])
        total = GaugeMetricFamily("modelpress_gpu_memory_total_bytes", "GPU memory per device.", labels=["device"])
        for device, (used_b, total_b) in self._read():
            used.add_metric([device], used_b)
            total.add_metric([device], total_b)
        yield used
        yield total

    def _read(self) -> Iterable[tuple[str, tuple[int, int]]]:
        if self._nvml is None:
            return []
        try:
            out = []
            for i in range(self._nvml.nvmlDeviceGetCount()):
                info = self._nvml.nvmlDeviceGetMemoryInfo(self._nvml.nvmlDeviceGetHandleByIndex(i))
                out.append((str(i), (int(info.used), int(info.total))))
            return out
        except Exception as e:  # a GPU that vanished must not break /metrics
            log.warning("NVML read failed: %s", e)
            return []


def _init_nvml():
    """Pynvml comes with the gpu extra only: import it lazily and treat any failure as 'no GPU'."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:
        return None


class ModelSeries:
    """The labelled series of one model version, looked up once at load instead of on every request.

    ``labels(...)`` takes a lock and builds a key each call (about 2 µs); a request touches nine series.
    The request-labelled ones (protocol x outcome) are looked up on first use and kept.
    """

    def __init__(self, metrics: Metrics, model: str, version: str) -> None:
        self._metrics = metrics
        self._labels = (model, version)
        self.queue_duration = metrics.queue_duration.labels(model, version)
        self.compute_duration = metrics.compute_duration.labels(model, version)
        self.batch_size = metrics.batch_size.labels(model, version)
        self.queue_depth = metrics.queue_depth.labels(model, version)
        self.inflight = metrics.inflight.labels(model, version)
        # Only with several workers: their statistics are rebuilt from the metrics (ModelStats.from_metrics).
        last = metrics.last_inference
        self._last_inference = last.labels(model, version) if last is not None else None
        self._requests: dict[tuple[str, str], tuple[Counter, Histogram, Counter]] = {}

    def request_done(self, protocol: str, outcome: str, seconds: float, rows: int) -> None:
        """Count one finished request: requests, request duration, and its rows as inferences."""
        key = (protocol, outcome)
        series = self._requests.get(key)
        if series is None:
            m, labels = self._metrics, self._labels
            series = (
                m.requests.labels(*labels, protocol, outcome),
                m.request_duration.labels(*labels, protocol, outcome),
                m.inferences.labels(*labels, outcome),
            )
            self._requests[key] = series
        series[0].inc()
        series[1].observe(seconds)
        if rows:
            series[2].inc(rows)
        if self._last_inference is not None:
            self._last_inference.set(time.time())


class Metrics:
    """Every metric of the server; ``scrape_registry`` is exposed at ``/metrics``.

    With one process that is ``registry`` itself. With ``workers_dir`` (several workers, prometheus-client in
    multiprocess mode: ``serving/worker_metrics.py``) this process's values go to ``registry`` and to files
    in that folder, and ``scrape_registry`` reads every worker's files; the gauges say how to combine workers
    (``multiprocess_mode``), and process metrics (per worker) are left out of the scrape.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        duration_buckets: Iterable[float] = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0),
        *,
        process: bool = True,
        gpu: bool = True,
        workers_dir: Path | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        buckets = tuple(duration_buckets)
        r = self.registry
        self.request_duration = Histogram(
            "modelpress_request_duration_seconds", "Inference request latency in the server.", REQUEST,
            buckets=buckets, registry=r,
        )  # fmt: skip
        self.queue_duration = Histogram(
            "modelpress_queue_duration_seconds",
            "Time a request waited for its batch.",
            MODEL,
            buckets=buckets,
            registry=r,
        )
        self.compute_duration = Histogram(
            "modelpress_compute_duration_seconds", "session.run time per batch.", MODEL, buckets=buckets, registry=r
        )
        self.batch_size = Histogram(
            "modelpress_batch_size_rows", "Rows per session.run.", MODEL, buckets=ROW_BUCKETS, registry=r
        )
        self.requests = Counter("modelpress_requests", "Inference requests by outcome.", REQUEST, registry=r)
        self.inferences = Counter(
            "modelpress_inferences", "Rows inferred, by outcome.", (*MODEL, "outcome"), registry=r
        )
        # Across workers: in-flight, queued and memory add up over the live workers; a file's size is one value.
        self.inflight = Gauge(
            "modelpress_inflight_requests", "Inference requests in progress.", MODEL, registry=r,
            multiprocess_mode="livesum",
        )  # fmt: skip
        self.queue_depth = Gauge(
            "modelpress_queue_depth", "Requests waiting for a batch.", MODEL, registry=r, multiprocess_mode="livesum"
        )
        self.model_memory = Gauge(
            "modelpress_model_memory_bytes",
            "Resident memory a model version took at load (RSS delta).",
            MODEL,
            registry=r,
            multiprocess_mode="livesum",
        )
        self.model_size = Gauge(
            "modelpress_model_size_bytes", "Bytes of a model version's files.", MODEL, registry=r,
            multiprocess_mode="livemax",
        )  # fmt: skip
        self.last_inference: Gauge | None = None
        if workers_dir is not None:
            self.last_inference = Gauge(
                "modelpress_last_inference_timestamp_seconds",
                "Time of the last inference request (Unix seconds).",
                MODEL,
                registry=r,
                multiprocess_mode="max",
            )
        self.model_info = Info("modelpress_model", "A served model version.", MODEL, registry=r)
        self.repository_polls = Counter(
            "modelpress_repository_polls", "Scans of the model repository by outcome (ok, error).", ("outcome",),
            registry=r,
        )  # fmt: skip
        self.version_refusals = Counter(
            "modelpress_version_refusals",
            "Model versions refused at load: files missing, truncated or tampered, invalid manifest, ONNX Runtime.",
            MODEL,
            registry=r,
        )
        if process:
            ProcessCollector(registry=r)
        gpu_collector = GpuMemoryCollector() if gpu else None
        if gpu_collector is not None:
            r.register(gpu_collector)
        self.workers_dir = workers_dir
        self.scrape_registry = r
        if workers_dir is not None:  # every worker's files, plus what this process knows for the whole server
            self.scrape_registry = CollectorRegistry()
            self.workers = WorkersCollector(workers_dir)
            self.scrape_registry.register(self.workers)
            self.scrape_registry.register(self.model_info)  # every worker serves the same versions
            if gpu_collector is not None:
                self.scrape_registry.register(gpu_collector)  # per device, not per process

    def model_loaded(
        self, model: str, version: str, *, providers: list[str], precision: str, memory_bytes: int, size_bytes: int
    ) -> None:
        self.model_memory.labels(model, version).set(memory_bytes)
        self.model_size.labels(model, version).set(size_bytes)
        self.model_info.labels(model, version).info(
            {"provider": providers[0] if providers else "", "providers": ",".join(providers), "precision": precision}
        )
        self.inflight.labels(model, version).set(0)
        self.queue_depth.labels(model, version).set(0)

    def workers_stats(self, model: str, version: str) -> ModelStats | None:
        """With several workers: one version's statistics over all of them (else None: use the process's own)."""
        if self.workers_dir is None:
            return None
        return ModelStats.from_metrics(self.workers.collect(), model, version)

    def series(self, model: str, version: str) -> ModelSeries:
        """The series of one served version, for the hot path (see :class:`ModelSeries`)."""
        return ModelSeries(self, model, version)

    def model_unloaded(self, model: str, version: str) -> None:
        """Drop the per-version series of a version no longer served (so dashboards do not show ghosts)."""
        for gauge in (self.model_memory, self.model_size, self.model_info, self.queue_depth, self.inflight):
            with contextlib.suppress(KeyError):
                gauge.remove(model, version)
