"""Helpers shared by the routers: fast JSON responses, the documented error responses, request accounting."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import Gauge
from starlette.requests import Request
from starlette.responses import Response

from modelpress.serving.dataplane import DataPlane
from modelpress.serving.errors import ServingError
from modelpress.serving.protocol.types import ErrorResponse
from modelpress.serving.served import ServedModel

if TYPE_CHECKING:
    from modelpress.serving.tracing import RequestSpan


def dumps(payload: Any) -> bytes:
    r"""Compact JSON; NaN and infinities written as ``NaN`` / ``Infinity``, as Python's json module does.

    orjson is ~15x faster than ``json.dumps`` on a response of floats, but writes non-finite floats as
    ``null`` and refuses integers beyond 64 bits: either case (or a literal ``null``, which is rare in a
    response) goes through ``json.dumps``, so the values a client reads are the same. (orjson writes
    non-ASCII text as UTF-8 rather than ``\u`` escapes, and exponents as ``1e-5`` rather than ``1e-05``.)
    """
    try:
        body = orjson.dumps(payload)
    except TypeError:  # orjson.JSONEncodeError is a TypeError: a big integer, a type orjson does not know
        body = b"null"
    if b"null" in body:
        return json.dumps(payload, separators=(",", ":"), allow_nan=True).encode()
    return body


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(payload), status_code=status, media_type="application/json", headers=headers)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error statuses a route can answer."""
    text = {
        400: "Bad request: the message names the input and expected vs received",
        401: "Missing or wrong bearer token (auth on): WWW-Authenticate tells how to authenticate",
        403: "Repository API disabled",
        404: "Unknown model or version",
        413: "Body over max_body_bytes",
        415: "Wrong Content-Type or Content-Encoding",
        500: "Internal error",
        503: "Not ready, draining, or queue full (Retry-After)",
        504: "No result within request_timeout_s",
    }
    return {s: {"model": ErrorResponse, "description": text[s]} for s in statuses}


def dataplane_of(request: Request) -> DataPlane:
    return request.app.state.dataplane


class Tracked:
    """Counts one inference request in the metrics and statistics, whatever its outcome.

    ``with Tracked(dataplane, name, "v2") as track:``, and the route fills in ``track.served`` (which version
    ran) and ``track.rows``. A class rather than ``@asynccontextmanager``: no generator to drive per request.
    """

    __slots__ = ("_carrier", "_dataplane", "_gauge", "_name", "_protocol", "_span", "_started", "rows", "served")

    def __init__(
        self, dataplane: DataPlane, name: str, protocol: str, carrier: Mapping[str, Any] | None = None
    ) -> None:
        self._dataplane = dataplane
        self._name = name
        self._protocol = protocol
        self._carrier = carrier  # the request's headers: where a caller's W3C traceparent is, when tracing is on
        self._gauge: Gauge | None = None
        self._span: RequestSpan | None = None
        self.served: ServedModel | None = None
        self.rows = 0

    def __enter__(self) -> Tracked:
        self._started = time.perf_counter()
        if self._dataplane.tracing is not None:
            self._span = self._dataplane.tracing.start_request(self._name, self._protocol, self._carrier)
        try:
            served = self._dataplane.repository.get(self._name)
            self._gauge = served.series.inflight
            self._gauge.inc()
            self.served = served  # failures before the run are still this version's
        except ServingError:
            pass
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb: object) -> None:
        if exc is None:
            status = 200
        elif isinstance(exc, ServingError):
            status = exc.status
        else:  # a bug (500); BaseExceptions such as a cancellation are counted the same way
            status = 500
        if self._gauge is not None:
            self._gauge.dec()
        seconds = time.perf_counter() - self._started
        self._dataplane.record(self._name, self._protocol, status, seconds, self.rows, self.served)
        if self._span is not None:
            self._span.end(status, self.rows, self.served.version if self.served is not None else None)
