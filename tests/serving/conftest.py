from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from modelpress.serving.app import create_app
from modelpress.serving.settings import Settings
from tests.serving.models import publish_classifier, publish_multi


@pytest.fixture
def thread_settings_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """The thread-pool settings as a server sees them by default (tests/conftest.py sets one for this process)."""
    monkeypatch.delenv("MODELPRESS_SHARED_THREAD_POOL", raising=False)
    monkeypatch.delenv("MODELPRESS_ALLOW_SPINNING", raising=False)


@pytest.fixture(scope="session")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only repository shared by tests that do not change it: digits v1 (classifier) and multi v1."""
    root = tmp_path_factory.mktemp("repo")
    publish_classifier(root)
    publish_multi(root)
    return root


@pytest.fixture(scope="session")
def digits_weights(repo: Path):
    from tests.serving.models import classifier_graph

    _, w, b = classifier_graph(0)
    return w, b


def settings_for(repository: Path, **overrides: object) -> Settings:
    return Settings(repository=repository, warmup_runs=1, **overrides)


# The token tests give the repository API (which refuses to start without auth).
ADMIN_TOKEN = "test-admin-token"
ADMIN = {"repository_api": True, "auth_token": ADMIN_TOKEN}


@asynccontextmanager
async def running(app: FastAPI, headers: dict[str, str] | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """In-process client; ASGITransport does not run the lifespan, so run it here."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", timeout=30, headers=headers
        ) as client:
            yield client


@asynccontextmanager
async def client_for(repository: Path, **overrides: object) -> AsyncIterator[httpx.AsyncClient]:
    """In-process client; with ``auth_token`` among the overrides it sends that token on every request."""
    app = create_app(settings_for(repository, **overrides), handle_signals=False)
    token = overrides.get("auth_token")
    async with running(app, {"Authorization": f"Bearer {token}"} if token else None) as client:
        yield client


@contextmanager
def uvicorn_server(settings: Settings) -> Iterator[str]:
    """A real uvicorn on a free 127.0.0.1 port in a thread; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(settings, handle_signals=False)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start within 30 s"
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
