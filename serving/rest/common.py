"""Helpers shared by the routers: fast JSON responses, the documented error responses, request accounting."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from serving.dataplane import DataPlane
from serving.errors import ServingError
from serving.protocol.types import ErrorResponse
from serving.served import ServedModel


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, separators=(",", ":"), allow_nan=True).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


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


@dataclass
class Tracked:
    """Filled in by the route so the accounting knows which version ran and how many rows."""

    served: ServedModel | None = None
    rows: int = 0


@asynccontextmanager
async def tracked(dataplane: DataPlane, name: str, protocol: str) -> AsyncIterator[Tracked]:
    """Count one inference request in the metrics and statistics, whatever its outcome."""
    started = time.perf_counter()
    info = Tracked()
    status = 200
    gauge = None
    try:
        try:
            served = dataplane.repository.get(name)
            gauge = served.series.inflight
            gauge.inc()
            info.served = served  # failures before the run are still this version's
        except ServingError:
            pass
        yield info
    except ServingError as e:
        status = e.status
        raise
    except Exception:
        status = 500
        raise
    finally:
        if gauge is not None:
            gauge.dec()
        dataplane.record(name, protocol, status, time.perf_counter() - started, info.rows, info.served)
