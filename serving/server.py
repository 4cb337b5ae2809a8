"""Running the app under uvicorn (what ``modelpress serve`` and ``python -m modelpress.serving`` call)."""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import os
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from modelpress.common.errors import UserError
from modelpress.serving.runtime.providers import ProviderConfig, preflight
from modelpress.serving.settings import Settings
from modelpress.serving.tls import ContextReloader, TlsFiles

if TYPE_CHECKING:
    import uvicorn


class ServeError(UserError):
    """The server cannot start with these settings (message names the problem)."""


def check(settings: Settings) -> None:
    """Fail fast, before binding a port: repository (folder or URL), providers (``--require-gpu``), auth token, TLS.

    Raises:
        ServeError: naming the problem.
    """
    from modelpress.serving.auth import AuthConfigError, TokenSource
    from modelpress.serving.runtime.providers import ProviderError
    from modelpress.serving.store import StoreError, open_store, wait_until_readable

    try:
        wait_until_readable(open_store(settings.repository, settings.storage_options), settings.wait_for_repository)
    except StoreError as e:
        raise ServeError(str(e)) from e
    try:
        preflight(ProviderConfig(requested=tuple(settings.providers), require_gpu=settings.require_gpu))
    except ProviderError as e:
        raise ServeError(str(e)) from e
    try:
        TokenSource.from_settings(settings)
    except AuthConfigError as e:
        raise ServeError(str(e)) from e
    _check_tls(settings)
    if settings.trt_engine_cache_dir is not None:
        check_writable(settings.trt_engine_cache_dir, "trt_engine_cache_dir")


def _check_tls(settings: Settings) -> None:
    files = TlsFiles.from_settings(settings)
    if files is None:
        return
    try:
        files.check_readable()
    except (OSError, ssl.SSLError) as e:
        raise ServeError(f"TLS: {e}") from e


def tls_options(settings: Settings) -> dict[str, Any]:
    """Uvicorn's TLS options for the settings (none when TLS is off); a client CA makes certificates required."""
    if settings.tls_cert is None or settings.tls_key is None:
        return {}
    options: dict[str, Any] = {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key)}
    if settings.tls_client_ca is not None:
        options |= {"ssl_ca_certs": str(settings.tls_client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return options


def watch_tls(config: uvicorn.Config, settings: Settings) -> ContextReloader | None:
    """Load ``config`` (which builds its SSLContext and the app) and reload the TLS files into it when they change.

    Returns the running reloader, or None when TLS is off.
    """
    files = TlsFiles.from_settings(settings)
    if files is None:
        return None
    config.load()
    reloader = ContextReloader(config.ssl, files, settings.tls_reload_s)
    reloader.start()
    return reloader


def check_writable(folder: Path, setting: str) -> None:
    """Create ``folder`` if needed and make sure this process can write there.

    Raises:
        ServeError: naming the setting and the reason.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".modelpress-write-check-"):
            pass
    except OSError as e:
        raise ServeError(f"{setting} {folder} is not a writable folder: {e.strerror or e}") from e


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as ``MODELPRESS_*`` variables, so worker processes started by uvicorn rebuild them."""
    env = {}
    for name, value in settings.model_dump(exclude_none=True).items():
        if isinstance(value, SecretStr):  # model_dump masks it; the workers need the real token
            value = value.get_secret_value()
        if isinstance(value, dict):  # storage options, version policies: JSON objects in env
            import json

            text = json.dumps(value)
        else:
            text = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
        env[f"MODELPRESS_{name.upper()}"] = text
    return env


def log_config(level: str) -> dict:
    """Uvicorn's logging config plus our ``serving`` and ``modelpress.*`` loggers, so workers log the same way."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["plain"] = {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    config["handlers"]["serving"] = {
        "class": "logging.StreamHandler",
        "formatter": "plain",
        "stream": "ext://sys.stderr",
    }
    python_level = "DEBUG" if level == "trace" else level.upper()
    config["loggers"]["serving"] = {"handlers": ["serving"], "level": python_level, "propagate": False}
    # The modules' own loggers (modelpress.serving.repository, .store, ...): loads, refusals, polls.
    config["loggers"]["modelpress"] = {"handlers": ["serving"], "level": python_level, "propagate": False}
    return config


@contextlib.contextmanager
def shared_metrics_dir(settings: Settings) -> Iterator[Path]:
    """The workers' metrics folder, emptied, named in ``PROMETHEUS_MULTIPROC_DIR`` before any worker starts.

    A temporary folder unless ``metrics_dir`` is set; a temporary one is removed when the server stops.
    """
    from modelpress.serving.worker_metrics import ENV, prepare_dir

    made = settings.metrics_dir is None
    path = Path(tempfile.mkdtemp(prefix="modelpress-metrics-")) if made else settings.metrics_dir
    prepare_dir(path)
    os.environ[ENV] = str(path)
    try:
        yield path
    finally:
        if made:
            shutil.rmtree(path, ignore_errors=True)


def serve(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT; with several workers each process loads its own sessions."""
    import uvicorn

    check(settings)
    common = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "timeout_graceful_shutdown": max(1, int(settings.drain_timeout_s)),
        "factory": True,
        "access_log": settings.log_level in ("debug", "trace"),
        "log_config": log_config(settings.log_level),
    }
    common |= tls_options(settings)
    if settings.workers > 1:
        with shared_metrics_dir(settings) as metrics_dir:
            settings = settings.model_copy(update={"metrics_dir": metrics_dir})
            os.environ.update(settings_env(settings))  # the entry point hands the settings to the workers
            if settings.tls_enabled():  # uvicorn builds each worker's SSLContext out of our reach
                logging.getLogger("serving").warning(
                    "with workers > 1 the REST certificate is read at start only (gRPC's follows the files)"
                )
            uvicorn.run("modelpress.serving.app:create_app", workers=settings.workers, **common)
    else:
        from modelpress.serving.app import create_app

        config = uvicorn.Config(functools.partial(create_app, settings), **common)
        reloader = watch_tls(config, settings)
        server = uvicorn.Server(config)
        try:
            server.run()
        finally:
            if reloader is not None:
                reloader.stop()
        if not server.started:  # what uvicorn.run does when the startup failed (e.g. a model did not load)
            raise SystemExit(3)
