from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from modelpress.serving.app import create_app
from modelpress.serving.server import tls_options, watch_tls
from modelpress.serving.settings import Settings
from tests.serving.conftest import settings_for
from tests.serving.models import publish_classifier, publish_encoder, publish_multi


@dataclass
class Served:
    url: str
    grpc: str  # host:port of the gRPC server
    app: object


@contextmanager
def serve(settings: Settings) -> Iterator[Served]:
    """The app under a real uvicorn on a free 127.0.0.1 port, with its gRPC server on another (grpc_port=0).

    TLS as ``modelpress serve`` sets it up (``serving/server.py``: uvicorn's options, the certificate reloader).
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(settings, handle_signals=False)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", **tls_options(settings))
    reloader = watch_tls(config, settings)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start within 30 s"
    try:
        yield Served(f"127.0.0.1:{port}", f"127.0.0.1:{app.state.grpc_port}", app)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        if reloader is not None:
            reloader.stop()


@pytest.fixture(scope="session")
def grpc_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """digits (classifier), multi (two inputs) and a text encoder (BYTES in)."""
    root = tmp_path_factory.mktemp("grpc-repo")
    publish_classifier(root)
    publish_multi(root)
    publish_encoder(root)
    return root


@pytest.fixture(scope="module")
def served(grpc_repo: Path) -> Iterator[Served]:
    with serve(settings_for(grpc_repo, grpc_port=0, max_tensor_elements=100_000, max_body_bytes=1 << 20)) as s:
        yield s
