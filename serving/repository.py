"""The served side of the model repository: discover, verify, load, swap atomically, drain, unload.

Each model serves its latest numeric version. Loading verifies every file's sha256 against the manifest
(a tampered version is refused with the reason), creates and warms the session in a worker thread, then
swaps the new version in with one assignment; the old version finishes what it had queued before its
session is released. A failed load leaves the previous version serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path

import numpy as np

from modelpress.serving.batcher import Batcher, BatchStats
from modelpress.serving.batching import batch_policy
from modelpress.serving.compute import ComputePool
from modelpress.serving.errors import ModelLoadError, ModelNotFoundError, ServingError
from modelpress.serving.graph_manifest import manifest_for
from modelpress.serving.manifest import (
    ManifestError,
    ModelManifest,
    list_models,
    list_versions,
    verify_files,
)
from modelpress.serving.memory import release_free_heap, rss_bytes
from modelpress.serving.metrics import Metrics
from modelpress.serving.protocol.types import RepositoryIndexEntry
from modelpress.serving.runtime.base import ModelRuntime
from modelpress.serving.served import ServedModel
from modelpress.serving.settings import Settings

log = logging.getLogger("modelpress.serving.repository")

RuntimeFactory = Callable[[ModelManifest, Path], ModelRuntime]


class ModelRepository:
    def __init__(
        self,
        root: Path,
        settings: Settings,
        metrics: Metrics,
        compute: ComputePool,
        runtime_factory: RuntimeFactory,
        load_executor: Executor | None = None,
    ) -> None:
        self.root = root
        self.settings = settings
        self.metrics = metrics
        self.compute = compute  # session.run
        self.load_executor = load_executor  # loads and warm-ups, off the compute threads (None: loop default)
        self.runtime_factory = runtime_factory
        self._served: dict[str, ServedModel] = {}
        self._failures: dict[str, str] = {}  # model -> why its last load failed
        self._expected: set[str] = set()  # models that should be served (readiness)
        self._locks: dict[str, asyncio.Lock] = {}
        self._draining: set[asyncio.Task] = set()

    # ---- lookup -------------------------------------------------------------------------------------------
    def get(self, name: str, version: str | None = None) -> ServedModel:
        """The served version of ``name`` (and it must be ``version`` when given).

        Raises:
            ModelNotFoundError: unknown model, or a version that is not the one served.
        """
        served = self._served.get(name)
        if served is None:
            reason = self._failures.get(name)
            why = f" (its last load failed: {reason})" if reason else ""
            raise ModelNotFoundError(f"model '{name}' is not served{why}; served models: {sorted(self._served)}")
        if version is not None and version != served.version:
            raise ModelNotFoundError(
                f"model '{name}' version {version!r} is not served (served version: {served.version})"
            )
        return served

    def served(self) -> list[ServedModel]:
        return list(self._served.values())

    def knows(self, name: str) -> bool:
        return name in self._served or name in self._expected

    def ready(self) -> bool:
        """Every model that should be served is loaded and warm, and there is at least one."""
        return bool(self._expected) and all(name in self._served for name in self._expected)

    def index(self) -> list[RepositoryIndexEntry]:
        """Triton's repository index: every version on disk with its state."""
        entries = []
        names = sorted(set(list_models(self.root)) | set(self._served))
        for name in names:
            served = self._served.get(name)
            for version in list_versions(self.root / name) or ([int(served.version)] if served else []):
                if served is not None and str(version) == served.version:
                    entries.append(RepositoryIndexEntry(name=name, version=str(version), state="READY"))
                else:
                    reason = self._failures.get(name, "") if served is None else "not the latest version"
                    entries.append(
                        RepositoryIndexEntry(name=name, version=str(version), state="UNAVAILABLE", reason=reason)
                    )
        return entries

    # ---- load / unload ------------------------------------------------------------------------------------
    async def load_all(self) -> None:
        """Load every model found at startup; a failure is logged and keeps the server not-ready."""
        names = list_models(self.root)
        if not names:
            log.warning("model repository %s holds no models: the server will not be ready", self.root)
        for i, name in enumerate(names, 1):
            self._expected.add(name)
            log.info("loading model %d/%d: %s", i, len(names), name)  # progress for large repositories
            try:
                await self.load(name)
            except ServingError as e:
                log.error("could not load model '%s': %s", name, e.message)

    async def load(self, name: str) -> ServedModel:
        """Load (or reload) the latest version of ``name``, swap it in, drain the old one in the background.

        Raises:
            ModelNotFoundError: no such model folder with a numeric version.
            ModelLoadError: the version is invalid, tampered, or refused by ONNX Runtime; the old one keeps serving.
        """
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            versions = list_versions(self.root / name) if _safe_name(name) else []
            if not versions:
                raise ModelNotFoundError(f"no model '{name}' with a numeric version folder in repository {self.root}")
            version_dir = self.root / name / str(versions[-1])
            loop = asyncio.get_running_loop()
            try:
                manifest, runtime, memory = await loop.run_in_executor(
                    self.load_executor, self._build, name, version_dir
                )
            except ModelLoadError as e:
                self._failures[name] = e.message
                raise
            size = sum(record.bytes for record in manifest.files.values())
            series = self.metrics.series(manifest.name, str(manifest.version))
            served = ServedModel(manifest, version_dir, runtime, size_bytes=size, memory_bytes=memory, series=series)
            served.batcher = self._make_batcher(served)
            served.batcher.start()
            self._swap_in(served)
            return served

    def _swap_in(self, served: ServedModel) -> None:
        """Make ``served`` the version answering requests, then retire the one it replaces."""
        name = served.name
        old = self._served.get(name)
        self._served[name] = served  # the atomic swap: one assignment on the event loop
        self._expected.add(name)
        self._failures.pop(name, None)
        self.metrics.model_loaded(
            name, served.version, providers=served.runtime.providers, precision=served.manifest.precision,
            memory_bytes=served.memory_bytes, size_bytes=served.size_bytes,
        )  # fmt: skip
        log.info(
            "serving %s v%s on %s (%.1f MiB at load)",
            name, served.version, served.runtime.providers, served.memory_bytes / 2**20,
        )  # fmt: skip
        if old is not None:
            self._retire(old, served.version)

    async def unload(self, name: str) -> None:
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            served = self._served.pop(name, None)
            self._expected.discard(name)
            if served is None:
                raise ModelNotFoundError(f"model '{name}' is not loaded")
            await self._drain(served)

    def _retire(self, old: ServedModel, new_version: str) -> None:
        task = asyncio.get_running_loop().create_task(self._drain(old, keep_series=old.version == new_version))
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    async def _drain(self, old: ServedModel, keep_series: bool = False) -> None:
        """Let the old version finish its queue (bounded by drain_timeout_s), then release its session."""
        try:
            await asyncio.wait_for(old.batcher.close(), self.settings.drain_timeout_s)
        except asyncio.TimeoutError:  # not the builtin before Python 3.11
            log.warning("%s v%s: drain timed out after %ss", old.name, old.version, self.settings.drain_timeout_s)
        old.runtime.unload()
        if not keep_series:
            self.metrics.model_unloaded(old.name, old.version)
        log.info("unloaded %s v%s", old.name, old.version)

    def _build(self, name: str, version_dir: Path) -> tuple[ModelManifest, ModelRuntime, int]:
        """Blocking part of a load (runs in a worker thread): validate, verify, create, warm up.

        Returns the manifest, the loaded runtime, and the resident memory the load added (bytes).
        """
        try:
            manifest = manifest_for(name, version_dir)  # a bare model.onnx gets one synthesized from its graph
            if manifest.name != name or str(manifest.version) != version_dir.name:
                raise ManifestError(
                    f"{version_dir}: manifest says {manifest.name} v{manifest.version}, "
                    f"folder is {name}/{version_dir.name}"
                )
            verify_files(manifest, version_dir)
        except ManifestError as e:
            raise ModelLoadError(f"refused {name} v{version_dir.name}: {e}") from e
        before = rss_bytes()
        runtime = self.runtime_factory(manifest, version_dir)
        try:
            runtime.load()
        except ModelLoadError:
            raise
        except Exception as e:  # warm-up failures and anything ORT raises: the version is not servable
            reason = e.message if isinstance(e, ServingError) else f"{type(e).__name__}: {e}"
            raise ModelLoadError(f"refused {name} v{version_dir.name}: {reason}") from e
        release_free_heap()  # the parsed model file's memory, freed by ORT, back to the system
        return manifest, runtime, max(0, rss_bytes() - before)

    def _make_batcher(self, served: ServedModel) -> Batcher:
        series = served.series
        policy = batch_policy(served.manifest, self.settings)
        submit, predict = self.compute.submit, served.runtime.predict

        def run(inputs: dict[str, np.ndarray], outputs: list[str]) -> asyncio.Future[dict[str, np.ndarray]]:
            return submit(predict, inputs, outputs)  # a future, not a coroutine: no task per batch

        def on_batch(rows: int, seconds: float) -> None:
            served.stats.batch_done(rows, seconds)
            series.compute_duration.observe(seconds)
            series.batch_size.observe(rows)

        def on_depth(depth: int) -> None:
            series.queue_depth.set(depth)

        return Batcher(
            run,
            max_batch_size=policy.max_batch_size,
            max_queue_delay_s=policy.max_queue_delay_s,
            max_queue_size=policy.max_queue_size,
            max_concurrent_batches=self.settings.compute_threads,
            batchable=served.batchable,
            eager_when_idle=not self.settings.wait_when_idle,
            stats=BatchStats(on_batch=on_batch, on_depth=on_depth),
        )

    async def close(self) -> None:
        """Drain and release everything (server shutdown)."""
        served, self._served = list(self._served.values()), {}
        await asyncio.gather(*(self._drain(s) for s in served), *self._draining, return_exceptions=True)


def _safe_name(name: str) -> bool:
    """A model name from a URL must be one plain path segment before it touches the filesystem."""
    from modelpress.serving.manifest import validate_model_name

    try:
        validate_model_name(name)
    except ValueError:
        return False
    return True
