"""Opt-in OpenTelemetry tracing: a span per inference request, child spans for its queue wait and its compute.

Off unless asked for: ``tracing=true``, or left unset with the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` set (and ``OTEL_SDK_DISABLED`` not true). Then spans go over OTLP/HTTP
to that endpoint, configured as the OpenTelemetry SDK reads its variables (``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``, ``OTEL_EXPORTER_OTLP_HEADERS``...). Needs the ``otel``
extra. Off, nothing here is imported and the request path pays one ``is None`` test.

Each request span continues the caller's trace when it sends a W3C ``traceparent`` (REST headers; a gRPC
adapter passes its metadata as the carrier of :meth:`Tracing.start_request`). The queue and compute spans are
written when the batch result arrives, with the times the batcher measured, so the batcher itself stays free
of tracing; ``modelpress.batch_size`` says how many rows the run that served the request had.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the otel extra is imported only when tracing is on
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span

    from modelpress.serving.batching.batcher import BatchResult

TRACER_NAME = "modelpress.serving"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


class TracingError(Exception):
    """Tracing was asked for but cannot run (the otel extra is missing)."""


def wanted(setting: bool | None, environ: Mapping[str, str]) -> bool:
    """The ``tracing`` setting as given; unset, on when an OTLP endpoint variable is set and the SDK not disabled."""
    if setting is not None:
        return setting
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(environ.get(name) for name in ENDPOINT_VARIABLES)


def otlp_provider() -> TracerProvider:
    """A tracer provider exporting in batches over OTLP/HTTP, configured from the ``OTEL_*`` variables.

    Raises:
        TracingError: the ``otel`` extra is not installed.
    """
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as e:
        raise TracingError(f"tracing needs the otel extra (pip install 'modelpress[otel]'): {e}") from e
    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "modelpress"}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


class RequestSpan:
    """One request's span, current (the parent of its queue and compute spans) until :meth:`end`."""

    __slots__ = ("_detach", "span")

    def __init__(self, span: Span, token: object) -> None:
        from opentelemetry import context

        self.span = span
        self._detach = lambda: context.detach(token)

    def end(self, status: int, rows: int, version: str | None) -> None:
        from opentelemetry.trace import Status, StatusCode

        self.span.set_attribute("http.response.status_code", status)
        self.span.set_attribute("modelpress.rows", rows)
        if version:
            self.span.set_attribute("modelpress.model_version", version)
        if status >= 500:
            self.span.set_status(Status(StatusCode.ERROR))
        self._detach()
        self.span.end()


class Tracing:
    """Makes the spans; one per app, on the tracer provider it is given (tests give one with an in-memory exporter)."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self.tracer = provider.get_tracer(TRACER_NAME)
        self._propagator = TraceContextTextMapPropagator()

    def start_request(self, model: str, protocol: str, carrier: Mapping[str, Any] | None) -> RequestSpan:
        """Open the span of one inference request and make it current.

        Args:
            model: the model name as requested.
            protocol: ``v2``, ``v1``, ``openai``, ``grpc``...
            carrier: where the caller's ``traceparent`` / ``tracestate`` are (HTTP headers, gRPC metadata as a
                dict); None or without them, the span starts a new trace.
        """
        from opentelemetry import context, trace

        parent = self._propagator.extract(carrier) if carrier is not None else None
        span = self.tracer.start_span(
            f"infer {model}",
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes={"modelpress.model": model, "modelpress.protocol": protocol},
        )
        token = context.attach(trace.set_span_in_context(span, parent))
        return RequestSpan(span, token)

    def batch_spans(self, result: BatchResult) -> None:
        """The current request's ``queue`` and ``compute`` spans, from the batcher's measured times.

        The result arrives as its run ends, so the run ended now and began ``compute_s`` ago, and the wait
        before it lasted ``queue_s``.
        """
        end = time.time_ns()
        started = end - int(result.compute_s * 1e9)
        queued = started - int(result.queue_s * 1e9)
        rows = {"modelpress.batch_size": result.batch_rows}
        self.tracer.start_span("queue", start_time=queued, attributes=rows).end(end_time=started)
        self.tracer.start_span("compute", start_time=started, attributes=rows).end(end_time=end)

    def shutdown(self) -> None:
        """Export what is still buffered (at server stop)."""
        self.provider.shutdown()
