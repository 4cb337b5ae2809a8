"""Running the app under uvicorn (what ``modelpress serve`` and ``python -m modelpress.serving`` call)."""

from __future__ import annotations

import copy
import functools
import os

from pydantic import SecretStr

from modelpress.common.errors import UserError
from modelpress.serving.runtime.providers import ProviderConfig, preflight
from modelpress.serving.settings import Settings


class ServeError(UserError):
    """The server cannot start with these settings (message names the problem)."""


def check(settings: Settings) -> None:
    """Fail fast, before binding a port: repository folder, execution providers (``--require-gpu``), auth token.

    Raises:
        ServeError: naming the problem.
    """
    from modelpress.serving.auth import AuthConfigError, TokenSource
    from modelpress.serving.runtime.providers import ProviderError

    if not settings.repository.is_dir():
        raise ServeError(f"model repository {settings.repository} is not a directory")
    try:
        preflight(ProviderConfig(requested=tuple(settings.providers), require_gpu=settings.require_gpu))
    except ProviderError as e:
        raise ServeError(str(e)) from e
    try:
        TokenSource.from_settings(settings)
    except AuthConfigError as e:
        raise ServeError(str(e)) from e


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as ``MODELPRESS_*`` variables, so worker processes started by uvicorn rebuild them."""
    env = {}
    for name, value in settings.model_dump(exclude_none=True).items():
        if isinstance(value, SecretStr):  # model_dump masks it; the workers need the real token
            value = value.get_secret_value()
        text = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
        env[f"MODELPRESS_{name.upper()}"] = text
    return env


def log_config(level: str) -> dict:
    """Uvicorn's logging config plus our ``serving`` loggers, so worker processes log the same way."""
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
    return config


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
    if settings.workers > 1:
        os.environ.update(settings_env(settings))  # the entry point hands the settings to the workers
        uvicorn.run("modelpress.serving.app:create_app", workers=settings.workers, **common)
    else:
        from modelpress.serving.app import create_app

        uvicorn.run(functools.partial(create_app, settings), **common)
