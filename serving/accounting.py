"""Accounting of one inference request in the metrics and statistics, whatever the transport."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import Gauge

from modelpress.serving.dataplane import DataPlane
from modelpress.serving.errors import ServingError
from modelpress.serving.served import ServedModel

if TYPE_CHECKING:
    from modelpress.serving.tracing import RequestSpan

# nginx's "client closed request": counted as a client error, as the request did not fail on the server's side.
CLIENT_CLOSED = 499


class Tracked:
    """Counts one inference request in the metrics and statistics, whatever its outcome.

    ``with Tracked(dataplane, name, protocol, carrier) as track:`` (protocol ``v2``, ``v1``, ``openai``,
    ``explain`` or ``grpc``), and the handler fills in ``track.served`` (which version ran) and ``track.rows``.
    With tracing on, the request is a span continuing the caller's W3C ``traceparent`` found in ``carrier`` (the
    HTTP headers or the gRPC metadata). A class rather than ``@asynccontextmanager``: no generator to drive per
    request.
    """

    __slots__ = ("_carrier", "_dataplane", "_gauge", "_name", "_protocol", "_span", "_started", "rows", "served")

    def __init__(
        self, dataplane: DataPlane, name: str, protocol: str, carrier: Mapping[str, Any] | None = None
    ) -> None:
        self._dataplane = dataplane
        self._name = name
        self._protocol = protocol
        self._carrier = carrier
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
        elif isinstance(exc, asyncio.CancelledError):
            status = CLIENT_CLOSED  # the caller went away (a cancelled gRPC call): not the server's failure
        else:  # a bug (500); other BaseExceptions are counted the same way
            status = 500
        if self._gauge is not None:
            self._gauge.dec()
        seconds = time.perf_counter() - self._started
        self._dataplane.record(self._name, self._protocol, status, seconds, self.rows, self.served)
        if self._span is not None:
            self._span.end(status, self.rows, self.served.version if self.served is not None else None)
