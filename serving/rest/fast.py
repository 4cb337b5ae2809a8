"""The inference routes answered ahead of FastAPI: the hot path without the framework's layers.

``POST /v2/models/{m}[/versions/{v}]/infer``, ``POST /v1/models/{m}:predict`` and ``POST /v1/embeddings`` are
matched here and answered by the same functions FastAPI's routes call (``infer_response``, ``predict_response``,
``embeddings_response``), with what the layers between would have added done inline: the request guards
(``serving/guards.py``: bearer auth, the drain's in-flight count) through the same admission the middleware uses,
the path-name check of the routers' dependency, the handler table's JSON errors and the catch-all's 500. Everything
else, and
every request this does not match (another method, a ``root_path``), goes on to FastAPI, which still declares
these routes, so ``/openapi.json`` describes them and ``fast_path=false`` serves them the old way.
:class:`ServingApp` dispatches here first, before ``FastAPI.__call__``: its per-request OpenTelemetry check (it
looks the global providers up on every request), Starlette's error middleware, our three middlewares, the
router and FastAPI's dependency solving are all skipped. (FastAPI's own OpenTelemetry spans, made only when an
OpenTelemetry SDK is configured in the process, which ``modelpress serve`` does not do, are skipped too.)

Why: at one uvicorn worker the event-loop thread is the bottleneck, and those layers cost it tens of µs per
request (py-spy; docs/benchmarks.md, "Serving overhead and memory").
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from modelpress.serving.dataplane import DataPlane
from modelpress.serving.errors import ServingError, log_unexpected, serving_error_response, unexpected_error_response
from modelpress.serving.guards import CallKind
from modelpress.serving.limits import check_path_names
from modelpress.serving.rest.guard import HttpGuards
from modelpress.serving.rest.openai_compat import embeddings_response
from modelpress.serving.rest.v1 import predict_response
from modelpress.serving.rest.v2 import infer_response

Handler = Callable[[DataPlane, Request, str | None, str | None], Awaitable[Response]]


async def embeddings_handler(
    dataplane: DataPlane, request: Request, _name: str | None, _version: str | None
) -> Response:
    """OpenAI's embeddings route (it answers its own errors in OpenAI's shape)."""
    return await embeddings_response(dataplane, request)


# The regular expressions Starlette compiles for these routes' paths (``{x}`` is ``[^/]+``), so a path matches
# here exactly when FastAPI's router would have matched it to the same route with the same parameters.
_ROUTES: tuple[tuple[str, str, re.Pattern[str], Handler], ...] = (
    ("/v2/models/", "/infer", re.compile(r"^/v2/models/(?P<model_name>[^/]+)/infer$"), infer_response),
    (
        "/v2/models/",
        "/infer",
        re.compile(r"^/v2/models/(?P<model_name>[^/]+)/versions/(?P<model_version>[^/]+)/infer$"),
        infer_response,
    ),
    ("/v1/models/", ":predict", re.compile(r"^/v1/models/(?P<model_name>[^/]+):predict$"), predict_response),
    ("/v1/", "/embeddings", re.compile(r"^/v1/embeddings$"), embeddings_handler),  # the model is in the body
)


def match(scope: Scope) -> tuple[Handler, str | None, str | None] | None:
    """The handler and path parameters of an inference request this layer answers, else None."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
        return None
    path: str = scope["path"]
    for prefix, suffix, pattern, handler in _ROUTES:
        if path.startswith(prefix) and path.endswith(suffix) and (found := pattern.match(path)) is not None:
            groups = found.groupdict()
            return handler, groups.get("model_name"), groups.get("model_version")
    return None


class InferenceFastPath:
    """Serves one matched inference request with what the layers it skips would have done.

    Args:
        dataplane: what the routes call.
        guards: the request guards as HTTP applies them, as ``GuardMiddleware`` does for every other request.
    """

    def __init__(self, *, dataplane: DataPlane, guards: HttpGuards) -> None:
        self.dataplane = dataplane
        self.guards = guards

    async def serve(
        self, found: tuple[Handler, str | None, str | None], scope: Scope, receive: Receive, send: Send
    ) -> None:
        try:
            admission = self.guards.admit(scope, CallKind.API)
        except ServingError as e:
            await self.guards.refusal(scope, e)(scope, receive, send)
            return
        handler, name, version = found
        with admission:
            try:
                check_path_names(name, version)
                response = await handler(self.dataplane, Request(scope, receive), name, version)
            except ServingError as e:
                response = serving_error_response(e)
            except Exception as e:
                response = unexpected_error_response(scope, e)
            try:
                await response(scope, receive, send)
            except Exception as e:  # the catch-all's rule once the answer has started: log it, keep serving
                log_unexpected(scope, e)


class ServingApp(FastAPI):
    """FastAPI, with the inference routes answered by :attr:`fast_path` (when set) before any of its layers."""

    fast_path: InferenceFastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fast_path is not None and not self.root_path and (found := match(scope)) is not None:
            await self.fast_path.serve(found, scope, receive, send)
            return
        await super().__call__(scope, receive, send)
