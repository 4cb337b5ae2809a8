"""The app factory, run by uvicorn with ``--factory``.

``uvicorn --factory modelpress.serving.app:create_app`` reads settings from ``MODELPRESS_*``; ``modelpress serve`` and
``python -m modelpress.serving`` do the same for you.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import logging
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from prometheus_client import CollectorRegistry

from modelpress.serving import tracing
from modelpress.serving.auth import AuthConfigError, TokenSource
from modelpress.serving.batching.policy import batch_policy
from modelpress.serving.compute import ComputePool
from modelpress.serving.dataplane import DataPlane
from modelpress.serving.drain import Drain
from modelpress.serving.errors import HANDLERS, CatchAllMiddleware
from modelpress.serving.guards import Guards
from modelpress.serving.manifest import ModelManifest
from modelpress.serving.memory import freeze_startup_heap, thaw_heap
from modelpress.serving.metrics import Metrics
from modelpress.serving.protocol.types import InferenceRequest, PredictRequest
from modelpress.serving.repository import ModelRepository, RuntimeFactory
from modelpress.serving.rest import metrics as metrics_routes
from modelpress.serving.rest import openai_compat, v1, v2
from modelpress.serving.rest import repository as repository_routes
from modelpress.serving.rest.common import errors
from modelpress.serving.rest.explain import router as explain_router
from modelpress.serving.rest.fast import InferenceFastPath, ServingApp
from modelpress.serving.rest.guard import GuardMiddleware, HttpGuards
from modelpress.serving.runtime.cpu_quota import cpu_quota
from modelpress.serving.runtime.onnx import OnnxModel, RuntimeOptions
from modelpress.serving.runtime.providers import ProviderConfig
from modelpress.serving.settings import Settings, SettingsError, load_settings
from modelpress.serving.store import StoreError, cache_folder, open_store
from modelpress.serving.ui.live import LiveFigures
from modelpress.serving.ui.routes import router as ui_router
from modelpress.serving.ui.session import BrowserSessions
from modelpress.serving.worker_metrics import env_dir, multiprocess_enabled

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from modelpress.serving.tracing import Tracing

log = logging.getLogger("serving")


def server_version() -> str:
    try:
        return package_version("modelpress")
    except PackageNotFoundError:
        return "0+unknown"


def provider_config(settings: Settings) -> ProviderConfig:
    """The execution providers and their options, as the settings say (``serving/runtime/providers.py``)."""
    return ProviderConfig(
        requested=tuple(settings.providers),
        require_gpu=settings.require_gpu,
        cuda_device_id=settings.cuda_device_id,
        gpu_mem_limit_bytes=settings.gpu_mem_limit_bytes,
        arena_extend_strategy=settings.arena_extend_strategy,
        cudnn_conv_algo_search=settings.cudnn_conv_algo_search,
        trt_fp16=settings.trt_fp16,
        trt_engine_cache_dir=settings.trt_engine_cache_dir,
        trt_max_workspace_bytes=settings.trt_max_workspace_bytes,
        io_binding=settings.io_binding,
    )


def onnx_runtime_factory(settings: Settings) -> RuntimeFactory:
    quota = cpu_quota()
    shared, spinning = settings.uses_shared_thread_pool(quota), settings.spins(quota)
    log.info(
        "ONNX Runtime threads: %s, %s%s",
        "one pool shared by every model" if shared else "a pool per model",
        "spinning after a run" if spinning else "sleeping when idle",
        f" (CPU quota of {quota:g} CPUs)" if quota is not None else "",
    )
    options = RuntimeOptions(
        providers=provider_config(settings),
        intra_op_threads=settings.intra_op_threads,
        inter_op_threads=settings.inter_op_threads,
        shared_thread_pool=shared,
        allow_spinning=spinning,
        cpu_mem_arena=settings.cpu_mem_arena,
        mem_pattern=settings.mem_pattern,
        shared_cpu_allocator=settings.shared_cpu_allocator,
        share_weights=settings.share_weights,
        length_group_overhead_tokens=settings.length_group_overhead_tokens if settings.length_grouping else None,
        warmup_runs=settings.warmup_runs,
    )

    def make(manifest: ModelManifest, version_dir: Path) -> OnnxModel:
        rows = batch_policy(manifest, settings).max_batch_size  # warm up the largest batch this model runs
        own = dataclasses.replace(options, warmup_batch_sizes=tuple(sorted({1, rows})))
        if manifest.tokenizer is not None:  # text model: tokenizers is imported only when one is served
            from modelpress.serving.runtime.text_onnx import TextOnnxModel

            return TextOnnxModel(manifest, version_dir, own)
        return OnnxModel(manifest, version_dir, own)

    return make


def workers_metrics_dir(settings: Settings) -> Path | None:
    """Where this worker shares its metrics with the others (``serving/worker_metrics.py``), or None (alone).

    ``modelpress serve --workers N`` sets it up; plain ``uvicorn --workers N`` with ``PROMETHEUS_MULTIPROC_DIR``
    set by hand works too.
    """
    if not multiprocess_enabled():
        if settings.workers > 1 and settings.metrics_dir is not None:
            raise SystemExit(
                f"error: metrics_dir {settings.metrics_dir} needs PROMETHEUS_MULTIPROC_DIR set to it before the "
                "server starts (modelpress serve does so)"
            )
        return None
    return settings.metrics_dir or env_dir()


def tracing_for(settings: Settings, provider: TracerProvider | None) -> Tracing | None:
    """Spans on ``provider`` when given, else on an OTLP exporter when the settings or ``OTEL_*`` ask; else None."""
    if provider is None:
        if not tracing.wanted(settings.tracing, os.environ):
            return None
        try:
            provider = tracing.otlp_provider()
        except tracing.TracingError as e:
            raise SystemExit(f"error: {e}") from e
        log.info("tracing: OpenTelemetry spans exported over OTLP/HTTP")
    return tracing.Tracing(provider)


def create_app(
    settings: Settings | None = None,
    *,
    registry: CollectorRegistry | None = None,
    runtime_factory: RuntimeFactory | None = None,
    handle_signals: bool = True,
    tracer_provider: TracerProvider | None = None,
) -> ServingApp:
    """Build the server. Models load in the lifespan startup; readiness is false until they are warm.

    Args:
        settings: defaults to ``Settings()`` read from ``MODELPRESS_*`` (how ``uvicorn --factory`` calls it).
        registry: Prometheus registry to fill (a fresh one per app by default).
        runtime_factory: builds the runtime of one version (ONNX Runtime by default); tests inject others.
        handle_signals: drain on SIGTERM before the server's own shutdown.
        tracer_provider: trace on this OpenTelemetry provider (tests give one); by default tracing follows the
            ``tracing`` setting and the ``OTEL_*`` variables (``serving/tracing.py``).
    """
    if settings is None:  # `uvicorn --factory modelpress.serving.app:create_app`: from MODELPRESS_*, one line if wrong
        try:
            settings = load_settings()
        except SettingsError as e:
            raise SystemExit(f"error: {e}") from e
    try:
        tokens = TokenSource.from_settings(settings)
    except AuthConfigError as e:
        raise SystemExit(f"error: {e}") from e
    metrics = Metrics(registry, settings.duration_buckets(), workers_dir=workers_metrics_dir(settings))
    compute = ComputePool(settings.compute_threads, name="modelpress-run")
    loads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelpress-load")
    try:
        store = open_store(settings.repository, settings.storage_options)
    except StoreError as e:
        raise SystemExit(f"error: {e}") from e
    cache = cache_folder(settings.repository_cache_dir(), store) if store.remote else None
    repository = ModelRepository(
        store, settings, metrics, compute, runtime_factory or onnx_runtime_factory(settings), loads, cache=cache
    )
    dataplane = DataPlane(repository, metrics, settings, server_version())
    dataplane.tracing = tracing_for(settings, tracer_provider)
    drain = Drain(
        settings.drain_timeout_s, settings.drain_grace_s, on_start=lambda: setattr(dataplane, "draining", True)
    )
    live = LiveFigures(metrics) if settings.ui else None  # the page's live figures, sampled in the background

    guards = Guards.from_settings(settings, drain, tokens)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if handle_signals:
            drain.install(asyncio.get_running_loop())
        grpc_server = None
        if settings.grpc_port is not None:  # grpc is imported only when asked for (the [grpc] extra)
            from modelpress.serving.grpc.server import start_grpc

            grpc_server = await start_grpc(settings, dataplane, guards)  # live while the models load, as REST
            app.state.grpc_port = grpc_server.port
        # Import ORT first so its own memory is not counted as the first model's (modelpress_model_memory_bytes).
        await asyncio.get_running_loop().run_in_executor(loads, importlib.import_module, "onnxruntime")
        await repository.load_all()
        if settings.gc_freeze:
            log.info("garbage collector: %d objects of the start frozen", freeze_startup_heap())
        dataplane.started = True
        log.info("ready: %s", dataplane.ready())
        sampler = live.start() if live is not None else None
        poller = None
        if settings.poll_interval > 0:  # Triton's poll mode: roll versions in and out as the store changes
            poller = asyncio.get_running_loop().create_task(repository.watch(settings.poll_interval))
        try:
            yield
        finally:
            if sampler is not None:
                sampler.cancel()
            if poller is not None:
                poller.cancel()
            dataplane.draining = True
            drain.uninstall()
            if grpc_server is not None:  # the drain has waited for its calls too (they are counted in flight)
                await grpc_server.stop(1.0)
            await repository.close()
            compute.shutdown(wait=False)
            loads.shutdown(wait=False)
            if settings.gc_freeze:
                thaw_heap()
            if dataplane.tracing is not None:
                dataplane.tracing.shutdown()

    app = ServingApp(
        title="modelpress inference server",
        version=server_version(),
        description="Open Inference Protocol (KServe V2) REST with the binary tensor extension, KServe V1 predict, "
        "Triton's repository and statistics extensions, and Prometheus metrics.",
        lifespan=lifespan,
        exception_handlers=HANDLERS,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.dataplane = dataplane
    app.state.drain = drain
    unauthorized = errors(401) if tokens is not None else None
    for router in (v2.router, v1.router, repository_routes.router, metrics_routes.router, openai_compat.router):
        app.include_router(router, responses=unauthorized)
    app.include_router(explain_router, responses=unauthorized)
    app.state.ui_tokens = tokens
    if settings.ui:  # the page at /ui (docs/serving.md, "The page"); its live figures read this app's metrics
        app.state.live = live
        app.include_router(ui_router, responses=unauthorized)
    app.state.guards = guards
    # With auth on, the page signs in once and then sends a session cookie instead of the bearer header.
    http_guards = HttpGuards(guards, BrowserSessions() if settings.ui and tokens is not None else None)
    app.add_middleware(CatchAllMiddleware)
    # Outermost but for the fast path: a request without the token touches nothing else.
    app.add_middleware(GuardMiddleware, guards=http_guards)
    if settings.fast_path:  # the inference routes skip every layer above (the fast path admits through the guards)
        app.fast_path = InferenceFastPath(dataplane=dataplane, guards=http_guards)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the request bodies the routes read themselves (JSON or binary)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (InferenceRequest, PredictRequest):
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(body.pop("$defs", {}))
        components[model.__name__] = body
    app.openapi_schema = schema
    return schema
