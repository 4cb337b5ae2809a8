"""The gRPC server: the Open Inference Protocol's service and ``grpc.health.v1`` on the uvicorn process's loop.

HTTP/2 connections (``http2.py``) carry gRPC calls (``calls.py``) to the services; the app's lifespan starts and
stops it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from modelpress.serving.dataplane import DataPlane
from modelpress.serving.grpc.calls import GrpcHandler, Method
from modelpress.serving.grpc.health import HealthService
from modelpress.serving.grpc.http2 import Http2Connection, Limits
from modelpress.serving.grpc.service import InferenceService
from modelpress.serving.guards import Guards
from modelpress.serving.settings import Settings
from modelpress.serving.tls import ContextReloader, TlsFiles

log = logging.getLogger("serving")

SHUTDOWN_POLL_S = 0.01


@dataclass
class GrpcServer:
    server: asyncio.Server
    port: int
    connections: set[Http2Connection] = field(default_factory=set)
    reloader: ContextReloader | None = None

    async def stop(self, grace_s: float) -> None:
        """Stop accepting; tell every connection (GOAWAY), give its calls ``grace_s`` to finish, then close."""
        self.server.close()
        if self.reloader is not None:
            self.reloader.stop()
        for connection in list(self.connections):
            connection.shutdown()
        deadline = asyncio.get_running_loop().time() + grace_s
        while any(c.streams for c in self.connections) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(SHUTDOWN_POLL_S)
        for connection in list(self.connections):
            connection.abort()


def methods(dataplane: DataPlane, guards: Guards) -> dict[str, Method]:
    """Every served method by its path: the inference service's and the health service's."""
    return InferenceService(dataplane, guards).methods() | HealthService(dataplane, guards).methods()


async def start_grpc(settings: Settings, dataplane: DataPlane, guards: Guards) -> GrpcServer:
    """Bind ``grpc_port`` on ``host`` (TLS when configured) and start serving.

    Raises:
        OSError: the port cannot be bound.
    """
    handler = GrpcHandler(methods(dataplane, guards), settings.max_body_bytes)
    # A message may take all of max_body_bytes; its 5-byte prefix is the frame's, not the message's.
    limits = Limits(max_body=settings.max_body_bytes + 5)
    files = TlsFiles.from_settings(settings)
    context = files.server_context(alpn=("h2",)) if files is not None else None
    connections: set[Http2Connection] = set()
    server = await asyncio.get_running_loop().create_server(
        lambda: Http2Connection(handler, limits, connections),
        host=settings.host,
        port=settings.grpc_port,
        ssl=context,
        reuse_port=settings.workers > 1,  # every worker process serves the port, as REST's
    )
    reloader = None
    if files is not None and context is not None:
        reloader = ContextReloader(context, files, settings.tls_reload_s)
        reloader.start()
    port = server.sockets[0].getsockname()[1]
    log.info("gRPC (Open Inference Protocol%s) on %s:%d", ", TLS" if files else "", settings.host, port)
    return GrpcServer(server, port, connections, reloader)
