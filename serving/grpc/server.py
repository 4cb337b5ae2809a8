"""The gRPC server: ``grpc.aio`` on the uvicorn process's event loop, started and stopped by the app's lifespan."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2_grpc

from modelpress.serving.dataplane import DataPlane
from modelpress.serving.grpc.health import HealthService
from modelpress.serving.grpc.service import SERVICE_NAME, InferenceService
from modelpress.serving.guards import Guards
from modelpress.serving.settings import Settings
from modelpress.serving.tls import Stamp, TlsFiles

log = logging.getLogger("serving")


@dataclass
class GrpcServer:
    server: grpc.aio.Server
    port: int

    async def stop(self, grace_s: float) -> None:
        await self.server.stop(grace_s)


def credentials(files: TlsFiles) -> grpc.ServerCredentials:
    """TLS credentials that follow the files: gRPC asks before each new connection whether they changed."""
    seen: list[Stamp] = [files.stamp()]

    def configuration() -> grpc.ServerCertificateConfiguration:
        ca = files.client_ca.read_bytes() if files.client_ca is not None else None
        return grpc.ssl_server_certificate_configuration([(files.key.read_bytes(), files.cert.read_bytes())], ca)

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        try:
            stamp = files.stamp()
            if stamp == seen[0]:
                return None
            fresh = configuration()
        except OSError as e:
            log.warning("gRPC TLS files changed but cannot be read (%s); keeping the previous certificate", e)
            return None
        seen[0] = stamp
        log.info("gRPC TLS certificate reloaded from %s", files.cert)
        return fresh

    return grpc.dynamic_ssl_server_credentials(
        configuration(), fetch, require_client_authentication=files.client_ca is not None
    )


async def start_grpc(settings: Settings, dataplane: DataPlane, guards: Guards) -> GrpcServer:
    """Bind ``grpc_port`` on ``host`` (TLS when configured) and start serving.

    Raises:
        RuntimeError: the port cannot be bound.
    """
    limit = settings.max_body_bytes
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", -1)])
    server.add_registered_method_handlers(SERVICE_NAME, InferenceService(dataplane, guards).method_handlers())
    health_pb2_grpc.add_HealthServicer_to_server(HealthService(dataplane, guards), server)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    address = f"{host}:{settings.grpc_port}"
    files = TlsFiles.from_settings(settings)
    port = server.add_secure_port(address, credentials(files)) if files else server.add_insecure_port(address)
    await server.start()
    log.info("gRPC (Open Inference Protocol%s) on %s:%d", ", TLS" if files else "", settings.host, port)
    return GrpcServer(server, port)
