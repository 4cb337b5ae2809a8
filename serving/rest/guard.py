"""The request guards (``serving/guards.py``) in FastAPI's stack: one middleware and the path-name dependency."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from modelpress.serving.errors import ServingError, serving_error_response
from modelpress.serving.guards import CallKind, Guards
from modelpress.serving.limits import check_path_names

_KINDS = {"/v2/health/live": CallKind.HEALTH, "/v2/health/ready": CallKind.HEALTH, "/metrics": CallKind.METRICS}


def call_kind(path: str) -> CallKind:
    return _KINDS.get(path, CallKind.API)


def authorization(scope: Scope) -> bytes | None:
    """The request's ``Authorization`` header, if any."""
    return next((v for k, v in scope["headers"] if k == b"authorization"), None)


class GuardMiddleware:
    """Admits every HTTP request through the guards (outermost but for the fast path, which admits its own)."""

    def __init__(self, app: ASGIApp, guards: Guards) -> None:
        self.app = app
        self.guards = guards

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            admission = self.guards.admit(call_kind(scope["path"]), authorization(scope))
        except ServingError as e:
            await serving_error_response(e)(scope, receive, send)
            return
        with admission:
            await self.app(scope, receive, send)


async def valid_path_names(request: Request) -> None:
    """Router dependency: ``model_name`` and ``model_version`` of the URL pass :func:`check_path_names` (400)."""
    check_path_names(request.path_params.get("model_name"), request.path_params.get("model_version"))
