"""The served side of the model repository: discover, fetch, verify, load, swap atomically, drain, unload.

The repository lives in a store (``modelpress.serving.store``): a local folder, served in place, or an object
store, whose versions are downloaded into a local cache first. Which versions of a model are served is its
version policy (``modelpress.serving.version_policy``, default: the latest one); a request without a version
gets the newest one served.

Loading verifies every file's sha256 against the manifest (a tampered version is refused with the reason),
creates and warms the session in a worker thread, then swaps the new version in with one assignment; the old
version finishes what it had queued before its session is released. A version that fails is refused, counted
(``modelpress_version_refusals_total``) and retried with backoff; what was serving keeps serving.

With ``poll_interval`` set, :meth:`ModelRepository.watch` rescans the store (Triton's poll mode): new complete
versions are rolled in, versions the policy no longer wants (or the store no longer has) are drained and
unloaded -- but only once a version the policy wants is serving, and never because a scan failed or came back
empty while models are served (a half-synced or unreachable store must not unload everything).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelpress.serving.batching.batcher import Batcher, BatchStats
from modelpress.serving.batching.policy import batch_policy
from modelpress.serving.compute import ComputePool
from modelpress.serving.errors import ModelLoadError, ModelNotFoundError, ServingError
from modelpress.serving.graph_manifest import UnsignedManifest, manifest_to_load
from modelpress.serving.manifest import ManifestError, ModelManifest, verify_files
from modelpress.serving.memory import release_free_heap, rss_bytes
from modelpress.serving.metrics import Metrics
from modelpress.serving.protocol.types import RepositoryIndexEntry
from modelpress.serving.runtime.base import ModelRuntime
from modelpress.serving.runtime.cpu_quota import available_cpus, cpu_quota
from modelpress.serving.served import ServedModel
from modelpress.serving.settings import Settings
from modelpress.serving.store import Listing, LocalStore, RepositoryStore, StoreError
from modelpress.serving.version_policy import VersionPolicy, policy_for

log = logging.getLogger("modelpress.serving.repository")

RuntimeFactory = Callable[[ModelManifest, Path], ModelRuntime]
MAX_RETRY_S = 600.0  # a refused version is retried at most this far apart


@dataclass
class _Refusal:
    """A version that failed to load: why, how often, and not before when to try again."""

    reason: str
    attempts: int
    retry_at: float


class ModelRepository:
    def __init__(
        self,
        store: RepositoryStore | Path,
        settings: Settings,
        metrics: Metrics,
        compute: ComputePool,
        runtime_factory: RuntimeFactory,
        load_executor: Executor | None = None,
        cache: Path | None = None,
    ) -> None:
        self.store = LocalStore(store) if isinstance(store, Path) else store
        self.cache = cache  # where versions of a remote store are downloaded (None: a local store)
        self.settings = settings
        self.metrics = metrics
        self.compute = compute  # session.run
        self.load_executor = load_executor  # scans, downloads, loads and warm-ups, off the compute threads
        self.runtime_factory = runtime_factory
        self._served: dict[str, dict[str, ServedModel]] = {}  # model -> version -> served
        self._failures: dict[str, str] = {}  # model -> why its last load failed
        self._refused: dict[tuple[str, int], _Refusal] = {}
        self._expected: set[str] = set()  # models that should be served (readiness)
        self._listing = Listing()  # the last successful scan
        self._locks: dict[str, asyncio.Lock] = {}
        self._draining: set[asyncio.Task] = set()
        self._cpus = available_cpus(cpu_quota())  # how many batches of one model fit side by side

    @property
    def root(self) -> Path | str:
        return self.store.root if isinstance(self.store, LocalStore) else self.store.url

    # ---- lookup -------------------------------------------------------------------------------------------
    def get(self, name: str, version: str | None = None) -> ServedModel:
        """The newest served version of ``name``, or exactly ``version`` when given.

        Raises:
            ModelNotFoundError: unknown model, or a version that is not served.
        """
        versions = self._served.get(name)
        if not versions:
            reason = self._failures.get(name)
            why = f" (its last load failed: {reason})" if reason else ""
            raise ModelNotFoundError(f"model '{name}' is not served{why}; served models: {sorted(self._served)}")
        if version is None:
            return versions[max(versions, key=int)]
        served = versions.get(version)
        if served is None:
            raise ModelNotFoundError(
                f"model '{name}' version {version!r} is not served (served versions: {sorted(versions, key=int)})"
            )
        return served

    def versions(self, name: str) -> list[str]:
        """The served versions of ``name``, ascending."""
        return sorted(self._served.get(name, {}), key=int)

    def served(self) -> list[ServedModel]:
        return [served for versions in self._served.values() for served in versions.values()]

    def knows(self, name: str) -> bool:
        return name in self._served or name in self._expected

    def ready(self) -> bool:
        """Whether the server takes traffic.

        Strict (``strict_readiness``): every model that should be served is loaded and warm. Otherwise one model
        failing does not hold the others back: ready once at least one model serves (per-model readiness, at
        ``/v2/models/{name}/ready``, tells which).
        """
        if not self._expected or not self._served:
            return False
        if self.settings.strict_readiness:
            return all(name in self._served for name in self._expected)
        return True

    def index(self) -> list[RepositoryIndexEntry]:
        """Triton's repository index: every published version with its state."""
        published = self._scan_now_if_local().published()
        entries = []
        for name in sorted(set(published) | set(self._served)):
            loaded = self._served.get(name, {})
            for version in sorted({*published.get(name, []), *map(int, loaded)}):
                if str(version) in loaded:
                    entries.append(RepositoryIndexEntry(name=name, version=str(version), state="READY"))
                    continue
                refusal = self._refused.get((name, version))
                reason = refusal.reason if refusal else "not selected by the version policy"
                entries.append(
                    RepositoryIndexEntry(name=name, version=str(version), state="UNAVAILABLE", reason=reason)
                )
        return entries

    def _scan_now_if_local(self) -> Listing:
        if isinstance(self.store, LocalStore):  # a folder scan is cheap and never blocks on the network
            with contextlib.suppress(StoreError, OSError):
                return self.store.scan()
        return self._listing

    # ---- polling ------------------------------------------------------------------------------------------
    async def load_all(self) -> None:
        """Load what the store holds at startup; a failure is logged (see :meth:`ready`)."""
        listing = await self._scan()
        if listing is None:
            return
        names = sorted(listing.published())
        if not names:
            log.warning("model repository %s holds no models: the server will not be ready", self.store)
        for i, name in enumerate(names, 1):
            log.info("loading model %d/%d: %s", i, len(names), name)  # progress for large repositories
            await self._sync_model(name, listing.published()[name])

    async def sync(self) -> None:
        """One poll: roll in the versions the policy wants, retire those it no longer wants."""
        listing = await self._scan()
        if listing is None:
            return
        published = listing.published()
        if not published and self._served:
            log.warning("repository %s lists no model; keeping the %d served until it does", self.store,
                        len(self._served))  # fmt: skip
            return
        for name in sorted(set(published) | set(self._served) | self._expected):
            await self._sync_model(name, published.get(name, []))

    async def watch(self, interval_s: float) -> None:
        """Poll the store every ``interval_s`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.sync()
            except Exception:  # one bad poll must never end polling
                log.exception("repository poll failed")

    async def _scan(self) -> Listing | None:
        try:
            listing = await asyncio.get_running_loop().run_in_executor(self.load_executor, self.store.scan)
        except (StoreError, OSError) as e:
            self.metrics.repository_polls.labels("error").inc()
            log.error("cannot scan model repository %s (keeping what is served): %s", self.store, e)
            return None
        self.metrics.repository_polls.labels("ok").inc()
        self._listing = listing
        return listing

    # ---- load / unload ------------------------------------------------------------------------------------
    async def load(self, name: str) -> ServedModel:
        """Load (or retry) what the version policy wants of ``name`` now; the repository API's load.

        Raises:
            ModelNotFoundError: no such model with a published version.
            ModelLoadError: the newest wanted version is invalid, tampered, or refused by ONNX Runtime; what was
                serving keeps serving.
        """
        from modelpress.serving.manifest import validate_model_name

        missing = ModelNotFoundError(f"no model '{name}' with a published version in repository {self.store}")
        try:
            validate_model_name(name)  # a name from a URL is one plain path segment before it reaches the store
        except ValueError:
            raise missing from None
        listing = await self._scan()
        versions = (listing or self._listing).published().get(name, [])
        if not versions:
            raise missing
        for version in versions:  # an explicit load retries refused versions at once
            self._refused.pop((name, version), None)
        errors = await self._sync_model(name, versions)
        if errors:
            raise errors[0]
        return self.get(name)

    async def _sync_model(self, name: str, available: list[int]) -> list[ModelLoadError]:
        """Make the served versions of ``name`` what its policy selects out of ``available``; returns refusals."""
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            if not available:  # the model is gone from the store
                self._expected.discard(name)
                for served in list(self._served.pop(name, {}).values()):
                    log.info("%s v%s is no longer in the repository: unloading", name, served.version)
                    self._retire(served, forget=True)
                return []
            self._expected.add(name)
            errors: list[ModelLoadError] = []
            for _ in range(len(available) + 2):  # each round loads what is wanted, refuses one more, or reads a policy
                wanted = self.version_policy(name).select([v for v in available if not self._waiting(name, v)])
                missing = [v for v in reversed(wanted) if str(v) not in self._served.get(name, {})]
                if not missing:
                    break
                for version in missing:
                    try:
                        await self._load_version(name, version)
                    except ModelLoadError as e:
                        self._refuse(name, version, e)
                        errors.append(e)
            loaded = self._served.get(name, {})
            keep = {str(v) for v in wanted} & loaded.keys()
            if keep:  # never unload what works before what the policy wants serves
                for version in sorted(loaded.keys() - keep, key=int):
                    self._retire(loaded.pop(version), forget=True)
            return errors

    def version_policy(self, name: str) -> VersionPolicy:
        """The server's policy for ``name``, else the newest served version's manifest's, else ``*``, else latest:1."""
        configured = self.settings.version_policy
        if name in configured:
            return policy_for(name, configured)
        served = self._served.get(name)
        declared = served[max(served, key=int)].manifest.version_policy if served else None
        return VersionPolicy.parse(declared) if declared else policy_for(name, configured)

    def _waiting(self, name: str, version: int) -> bool:
        refusal = self._refused.get((name, version))
        return refusal is not None and time.monotonic() < refusal.retry_at

    def _refuse(self, name: str, version: int, error: ModelLoadError) -> None:
        previous = self._refused.get((name, version))
        attempts = previous.attempts + 1 if previous else 1
        base = max(self.settings.poll_interval, 1.0)
        delay = min(MAX_RETRY_S, base * 2 ** (attempts - 1))
        self._refused[(name, version)] = _Refusal(error.message, attempts, time.monotonic() + delay)
        self._failures[name] = error.message
        self.metrics.version_refusals.labels(name, str(version)).inc()
        log.error("could not load %s v%s (attempt %d, next in %.0f s): %s", name, version, attempts, delay,
                  error.message)  # fmt: skip

    async def _load_version(self, name: str, version: int) -> ServedModel:
        loop = asyncio.get_running_loop()
        try:
            version_dir = await loop.run_in_executor(self.load_executor, self._fetch, name, version)
        except (StoreError, ManifestError, OSError) as e:
            raise ModelLoadError(f"refused {name} v{version}: {e}") from e
        manifest, runtime, memory = await loop.run_in_executor(
            self.load_executor, build_version, name, version_dir, self.runtime_factory
        )
        size = sum(record.bytes for record in manifest.files.values())
        series = self.metrics.series(manifest.name, str(manifest.version))
        served = ServedModel(manifest, version_dir, runtime, size_bytes=size, memory_bytes=memory, series=series)
        served.batcher = self._make_batcher(served)
        served.batcher.start()
        self._swap_in(served)
        return served

    def _fetch(self, name: str, version: int) -> Path:
        if self.cache is None and self.store.remote:
            raise StoreError(f"no cache folder to download {self.store} into (set cache_dir)")
        return self.store.fetch(name, version, self.cache or Path())

    def _swap_in(self, served: ServedModel) -> None:
        """Make ``served`` answer requests for its version (the newest serves unversioned requests)."""
        name = served.name
        versions = self._served.setdefault(name, {})
        old = versions.get(served.version)
        versions[served.version] = served  # the atomic swap: one assignment on the event loop
        self._expected.add(name)
        self._failures.pop(name, None)
        self._refused.pop((name, int(served.version)), None)
        self.metrics.model_loaded(
            name, served.version, providers=served.runtime.providers, precision=served.manifest.precision,
            memory_bytes=served.memory_bytes, size_bytes=served.size_bytes,
        )  # fmt: skip
        log.info(
            "serving %s v%s on %s (%.1f MiB at load)",
            name, served.version, served.runtime.providers, served.memory_bytes / 2**20,
        )  # fmt: skip
        if old is not None:
            self._retire(old, keep_series=True)

    async def unload(self, name: str) -> None:
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            versions = self._served.pop(name, {})
            self._expected.discard(name)
            if not versions:
                raise ModelNotFoundError(f"model '{name}' is not loaded")
            await asyncio.gather(*(self._drain(served) for served in versions.values()))

    def _retire(self, old: ServedModel, keep_series: bool = False, forget: bool = False) -> None:
        """Drain ``old`` in the background; ``forget`` also drops its cached download (a retired version)."""
        task = asyncio.get_running_loop().create_task(self._drain(old, keep_series=keep_series, forget=forget))
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    async def _drain(self, old: ServedModel, keep_series: bool = False, forget: bool = False) -> None:
        """Let the old version finish its queue (bounded by drain_timeout_s), then release its session."""
        try:
            await asyncio.wait_for(old.batcher.close(), self.settings.drain_timeout_s)
        except asyncio.TimeoutError:  # not the builtin before Python 3.11
            log.warning("%s v%s: drain timed out after %ss", old.name, old.version, self.settings.drain_timeout_s)
        old.runtime.unload()
        if forget and self.cache is not None and old.version_dir.is_relative_to(self.cache):
            shutil.rmtree(old.version_dir, ignore_errors=True)  # a retired version's download: the cache stays bounded
        if not keep_series:
            self.metrics.model_unloaded(old.name, old.version)
        log.info("unloaded %s v%s", old.name, old.version)

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
            max_concurrent_batches=self.settings.model_batches_in_flight(
                self._cpus, joins_requests=served.batchable and policy.max_batch_size > 1
            ),
            batchable=served.batchable,
            eager_when_idle=not self.settings.wait_when_idle,
            stats=BatchStats(on_batch=on_batch, on_depth=on_depth),
        )

    async def close(self) -> None:
        """Drain and release everything (server shutdown)."""
        served, self._served = self.served(), {}
        await asyncio.gather(*(self._drain(s) for s in served), *self._draining, return_exceptions=True)


def build_version(
    name: str, version_dir: Path, runtime_factory: RuntimeFactory
) -> tuple[ModelManifest, ModelRuntime, int]:
    """Load one version, blocking (the repository runs it off the loop): validate, verify, create, warm up.

    Returns the manifest, the loaded runtime, and the resident memory the load added (bytes). A bare
    ``model.onnx``'s manifest is completed by the runtime from its session (``graph_manifest.sign``): the
    one that comes back is the runtime's.
    """
    try:
        manifest = manifest_to_load(name, version_dir)
        if manifest.name != name or str(manifest.version) != version_dir.name:
            raise ManifestError(
                f"{version_dir}: manifest says {manifest.name} v{manifest.version}, folder is {name}/{version_dir.name}"
            )
        if not isinstance(manifest, UnsignedManifest):  # a bare model's records were hashed from these files
            verify_files(manifest, version_dir)
    except ManifestError as e:
        raise ModelLoadError(f"refused {name} v{version_dir.name}: {e}") from e
    before = rss_bytes()
    runtime = runtime_factory(manifest, version_dir)
    try:
        runtime.load()
    except ModelLoadError:
        raise
    except Exception as e:  # warm-up failures and anything ORT raises: the version is not servable
        reason = e.message if isinstance(e, ServingError) else f"{type(e).__name__}: {e}"
        raise ModelLoadError(f"refused {name} v{version_dir.name}: {reason}") from e
    if isinstance(runtime.manifest, UnsignedManifest):  # a runtime that cannot read a graph's signature
        runtime.unload()
        raise ModelLoadError(
            f"refused {name} v{version_dir.name}: {version_dir} has no manifest.json and "
            f"{type(runtime).__name__} does not read the model's inputs and outputs"
        )
    release_free_heap()  # the parsed model file's memory, freed by ORT, back to the system
    return runtime.manifest, runtime, max(0, rss_bytes() - before)
