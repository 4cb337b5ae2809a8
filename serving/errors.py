"""Errors the server answers with: one base carrying the HTTP status, small subclasses, one handler table.

Messages say what was expected and what came, e.g.
``input 'input': expected shape [-1, 64] FP32, got [2, 63] FP64``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("serving")


class ServingError(Exception):
    """Base of every error the server answers on purpose; ``status`` is the HTTP status.

    Every transport answers it from ``status`` alone: REST with that status, gRPC with :data:`GRPC_CODES`'s code.
    """

    status: int = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequestError(ServingError):
    status = 400


class UnauthenticatedError(ServingError):
    """No bearer token or a wrong one; ``WWW-Authenticate`` tells how to authenticate (RFC 6750)."""

    status = 401


class ForbiddenError(ServingError):
    status = 403


class ModelNotFoundError(ServingError):
    status = 404


class PayloadTooLargeError(ServingError):
    status = 413


class UnsupportedMediaTypeError(ServingError):
    status = 415


class UnavailableError(ServingError):
    """Not ready, draining, or a model being swapped: try again later."""

    status = 503


class OverloadedError(UnavailableError):
    """A model's queue is full; ``Retry-After`` tells the client when to come back."""

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class RequestTimeoutError(ServingError):
    status = 504


class ModelLoadError(ServingError):
    """A model version could not be loaded (tampered files, bad manifest, ORT refused it)."""

    status = 400


class InternalError(ServingError):
    status = 500


# The gRPC status of each HTTP status we answer with (names of ``grpc.StatusCode``, so this module needs no grpc).
# 413 is RESOURCE_EXHAUSTED, what gRPC itself answers to a message over its size limit.
GRPC_CODES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    413: "RESOURCE_EXHAUSTED",
    415: "INVALID_ARGUMENT",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def serving_error_response(exc: ServingError) -> Response:
    """The answer to an error raised on purpose (the handler table's, and the inference fast path's)."""
    if exc.status >= 500 and not isinstance(exc, UnavailableError | RequestTimeoutError):
        log.error("internal error: %s", exc.message)
    return error_response(exc.status, exc.message, exc.headers)


def log_unexpected(scope: Scope, exc: Exception) -> None:
    log.exception("unexpected error on %s", scope.get("path"), exc_info=exc)


def unexpected_error_response(scope: Scope, exc: Exception) -> Response:
    """The answer to a bug: logged with its traceback, a 500 naming only the exception's type."""
    log_unexpected(scope, exc)
    return error_response(500, f"internal error: {type(exc).__name__}")


async def _serving_error(_: Request, exc: ServingError) -> Response:
    return serving_error_response(exc)


async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return error_response(400, f"invalid request at '{where}': {first.get('msg')}")


async def _http_error(_: Request, exc: HTTPException) -> Response:
    return error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))


Handler = Callable[[Request, Any], Coroutine[Any, Any, Response]]

HANDLERS: dict[type[Exception], Handler] = {
    ServingError: _serving_error,
    RequestValidationError: _validation_error,
    HTTPException: _http_error,
}


class CatchAllMiddleware:
    """Last line of defence: a bug becomes a logged 500 ``{"error": ...}``, and the server keeps serving.

    Without it a traceback page or a dropped connection would reach the client.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                log_unexpected(scope, exc)
            else:
                await unexpected_error_response(scope, exc)(scope, receive, send)
