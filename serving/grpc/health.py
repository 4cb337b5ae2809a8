"""``grpc.health.v1.Health``, for Kubernetes gRPC probes and load balancers.

Services: ``""`` and ``inference.GRPCInferenceService`` are SERVING when the server is ready (every model loaded
and warm, not draining: the REST ``/v2/health/ready``); ``live`` is SERVING while the process runs (the
REST ``/v2/health/live``). Probes name the service in the probe's ``grpc.service`` field. Admitted by the
guards as health calls: open unless ``auth_health``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from grpc_health.v1 import health_pb2

from modelpress.serving.dataplane import DataPlane
from modelpress.serving.errors import ModelNotFoundError, ServingError
from modelpress.serving.grpc.calls import Call, Method
from modelpress.serving.grpc.service import SERVICE_NAME, authorization, guarded, parse, status_of
from modelpress.serving.guards import CallKind, Guards

HEALTH_SERVICE = "grpc.health.v1.Health"
LIVE = "live"
WATCH_POLL_S = 1.0

Status = health_pb2.HealthCheckResponse.ServingStatus


class HealthService:
    def __init__(self, dataplane: DataPlane, guards: Guards) -> None:
        self.dataplane = dataplane
        self.guards = guards

    def methods(self) -> dict[str, Method]:
        """``Check`` and the server-streaming ``Watch``, by path."""
        serialize = health_pb2.HealthCheckResponse.SerializeToString
        return {
            f"/{HEALTH_SERVICE}/Check": Method(self.check, serialize),
            f"/{HEALTH_SERVICE}/Watch": Method(self.watch, serialize, streaming=True),
        }

    def _status(self, service: str) -> Any:
        if service == LIVE:
            return Status.SERVING
        if service in ("", SERVICE_NAME):
            return Status.SERVING if self.dataplane.ready() else Status.NOT_SERVING
        raise ModelNotFoundError(f"unknown health service {service[:80]!r}: expected '', {SERVICE_NAME!r} or 'live'")

    async def check(self, raw: bytes, context: Call) -> Any:
        async def check(raw: bytes, _: Any) -> Any:
            request = parse(health_pb2.HealthCheckRequest, raw)
            return health_pb2.HealthCheckResponse(status=self._status(request.service))

        return await guarded(self.guards, CallKind.HEALTH, check, raw, context)

    async def watch(self, raw: bytes, context: Call) -> AsyncIterator[Any]:
        """The status now, then each change (checked every second) until the caller goes away."""
        try:
            with self.guards.admit(CallKind.HEALTH, authorization(context)):
                request = parse(health_pb2.HealthCheckRequest, raw)
                status = self._status(request.service)
        except ServingError as e:
            code, metadata = status_of(e)
            await context.abort(code, e.message, metadata)
        yield health_pb2.HealthCheckResponse(status=status)
        while True:
            await asyncio.sleep(WATCH_POLL_S)
            now = self._status(request.service)
            if now != status:
                status = now
                yield health_pb2.HealthCheckResponse(status=status)
