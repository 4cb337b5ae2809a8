"""Opt-in OpenTelemetry tracing: request spans continue the caller's trace, queue and compute are children."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from modelpress.serving.app import create_app
from modelpress.serving.tracing import wanted
from tests.serving.conftest import running, settings_for
from tests.serving.models import FEATURES, publish_classifier

pytestmark = pytest.mark.anyio
sdk = pytest.importorskip("opentelemetry.sdk.trace", reason="tracing needs the otel extra")

from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
BODY = {"inputs": [{"name": "input", "shape": [2, FEATURES], "datatype": "FP32", "data": [0.5] * (2 * FEATURES)}]}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tracing-repo")
    publish_classifier(root)
    return root


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def traced_app(repo: Path, exporter: InMemorySpanExporter, **overrides: object):
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return create_app(settings_for(repo, **overrides), handle_signals=False, tracer_provider=provider)


@pytest.mark.parametrize("fast_path", [True, False])
async def test_request_span_continues_the_callers_trace_with_queue_and_compute_children(repo, exporter, fast_path):
    async with running(traced_app(repo, exporter, fast_path=fast_path)) as c:
        r = await c.post("/v2/models/digits/infer", json=BODY, headers={"traceparent": TRACEPARENT})
    assert r.status_code == 200
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"infer digits", "queue", "compute"}
    request, queue, compute = spans["infer digits"], spans["queue"], spans["compute"]
    assert format(request.context.trace_id, "032x") == TRACE_ID
    assert format(request.parent.span_id, "016x") == PARENT_ID
    for child in (queue, compute):
        assert child.parent.span_id == request.context.span_id
        assert child.context.trace_id == request.context.trace_id
        assert child.attributes["modelpress.batch_size"] == 2
    assert queue.end_time == compute.start_time
    assert request.start_time <= queue.start_time
    assert compute.end_time <= request.end_time
    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["modelpress.protocol"] == "v2"
    assert request.attributes["modelpress.model_version"] == "1"
    assert request.attributes["modelpress.rows"] == 2


async def test_without_traceparent_a_new_trace_and_errors_are_spans_too(repo, exporter):
    async with running(traced_app(repo, exporter)) as c:
        ok = await c.post("/v1/models/digits:predict", json={"instances": [[0.1] * FEATURES]})
        missing = await c.post("/v2/models/nope/infer", json=BODY)
    assert ok.status_code == 200
    assert missing.status_code == 404
    requests = [s for s in exporter.get_finished_spans() if s.name.startswith("infer")]
    assert [s.name for s in requests] == ["infer digits", "infer nope"]
    assert requests[0].parent is None
    assert requests[0].attributes["modelpress.protocol"] == "v1"
    assert requests[1].attributes["http.response.status_code"] == 404
    assert requests[0].context.trace_id != requests[1].context.trace_id


async def test_grpc_infer_continues_the_trace_its_metadata_carries(repo, exporter):
    grpc = pytest.importorskip("grpc", reason="the gRPC route needs the grpc extra")
    from modelpress.serving.grpc.generated import open_inference_pb2 as pb
    from modelpress.serving.grpc.generated import open_inference_pb2_grpc as pb_grpc

    app = traced_app(repo, exporter, grpc_port=0)
    request = pb.ModelInferRequest(model_name="digits")
    request.inputs.add(name="input", datatype="FP32", shape=[2, FEATURES])
    request.raw_input_contents.append(b"\0" * 4 * 2 * FEATURES)
    # the lifespan (entered first) starts the gRPC server on this loop and sets its port
    async with running(app), grpc.aio.insecure_channel(f"127.0.0.1:{app.state.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        await stub.ModelInfer(request, metadata=[("traceparent", TRACEPARENT)])
        await stub.ModelInfer(request)  # no traceparent: a trace of its own
    spans = exporter.get_finished_spans()
    requests = [s for s in spans if s.name == "infer digits"]
    assert len(requests) == 2
    joined, alone = requests
    assert joined.kind.name == "SERVER"
    assert joined.attributes["modelpress.protocol"] == "grpc"
    assert format(joined.context.trace_id, "032x") == TRACE_ID
    assert format(joined.parent.span_id, "016x") == PARENT_ID
    assert joined.parent.is_remote
    children = [s for s in spans if s.parent is not None and s.parent.span_id == joined.context.span_id]
    assert sorted(s.name for s in children) == ["compute", "queue"]
    assert {s.context.trace_id for s in children} == {joined.context.trace_id}
    assert alone.parent is None
    assert format(alone.context.trace_id, "032x") != TRACE_ID


def test_off_unless_asked_for():
    assert not wanted(None, {})
    assert wanted(None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert wanted(None, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"})
    assert not wanted(None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"})
    assert not wanted(False, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})
    assert wanted(True, {})


async def test_off_by_default(repo, monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert create_app(settings_for(repo), handle_signals=False).state.dataplane.tracing is None


class Receiver(BaseHTTPRequestHandler):
    """A tiny OTLP/HTTP collector: keeps the body of every POST to /v1/traces."""

    bodies: list[bytes]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/traces":
            self.server.bodies.append(body)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.bodies = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def test_exported_over_otlp_http_when_the_standard_variables_say_so(repo, collector, monkeypatch):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{collector.server_address[1]}")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "modelpress-test")
    app = create_app(settings_for(repo), handle_signals=False)
    async with running(app) as c:
        r = await c.post("/v2/models/digits/infer", json=BODY, headers={"traceparent": TRACEPARENT})
        assert r.status_code == 200
    # the lifespan's end flushed the batch exporter
    names, traces, services = [], set(), set()
    for body in collector.bodies:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            services |= {a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"}
            for scope in resource_spans.scope_spans:
                names += [s.name for s in scope.spans]
                traces |= {s.trace_id.hex() for s in scope.spans}
    assert sorted(names) == ["compute", "infer digits", "queue"]
    assert traces == {TRACE_ID}
    assert services == {"modelpress-test"}
