"""Helpers shared by the routers: fast JSON responses, the documented error responses."""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from modelpress.serving.dataplane import DataPlane
from modelpress.serving.protocol.types import ErrorResponse


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
