"""The gRPC service on its own terms: typed contents, every error's status and message, auth, health, deadlines."""

from __future__ import annotations

import time

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from modelpress.serving.errors import OverloadedError
from modelpress.serving.grpc.generated import open_inference_pb2 as pb
from modelpress.serving.grpc.generated import open_inference_pb2_grpc as pb_grpc
from modelpress.serving.grpc.service import status_of
from tests.serving.conftest import ADMIN, ADMIN_TOKEN, settings_for
from tests.serving.grpc.conftest import serve
from tests.serving.models import FEATURES, classifier_reference

pytestmark = pytest.mark.slow  # a real server with gRPC per module: a few seconds

TOKEN = [("authorization", f"Bearer {ADMIN_TOKEN}")]


@pytest.fixture
def stub(served):
    with grpc.insecure_channel(served.grpc) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


def digits_request(rows: int = 1, features: int = FEATURES, **fields) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="digits", **fields)
    request.inputs.add(name="input", datatype="FP32", shape=[rows, features])
    return request


def _zeros(request: pb.ModelInferRequest) -> None:
    request.raw_input_contents.append(b"\0" * 4 * FEATURES)


def _grpc_outcomes(url: str) -> dict[str, float]:
    text = httpx.get(f"http://{url}/metrics").text
    out = {}
    for line in text.splitlines():
        if line.startswith("modelpress_requests_total{") and 'protocol="grpc"' in line and 'model="digits"' in line:
            out[line.split('outcome="')[1].split('"')[0]] = float(line.rsplit(" ", 1)[1])
    return out


def code_and_details(call, *args, **kwargs) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        call(*args, **kwargs)
    return raised.value.code(), raised.value.details()


def test_typed_contents_give_the_same_answer_as_raw_contents(stub, digits_weights):
    x = np.random.default_rng(3).standard_normal((2, FEATURES)).astype(np.float32)
    typed = digits_request(2, id="t-1")
    typed.inputs[0].contents.fp32_contents.extend(x.reshape(-1).tolist())
    typed.parameters["custom"].string_param = "kept"
    raw = digits_request(2)
    raw.raw_input_contents.append(x.tobytes())
    a, b = stub.ModelInfer(typed), stub.ModelInfer(raw)
    assert a.raw_output_contents == b.raw_output_contents
    assert (a.id, a.parameters["custom"].string_param) == ("t-1", "kept")
    out = np.frombuffer(a.raw_output_contents[0], np.float32).reshape(list(a.outputs[0].shape))
    np.testing.assert_allclose(out, classifier_reference(x, *digits_weights), rtol=1e-5, atol=1e-5)


def test_typed_contents_of_every_kind(stub):
    request = pb.ModelInferRequest(model_name="multi")
    add = request.inputs.add
    add(name="ids", datatype="INT64", shape=[1, 2]).contents.int64_contents.extend([2**40, 5])
    add(name="mask", datatype="BOOL", shape=[1, 2]).contents.bool_contents.extend([True, False])
    add(name="x", datatype="FP64", shape=[1, 3]).contents.fp64_contents.extend([0.5, 1.5, -2.0])
    add(name="h", datatype="FP16", shape=[1, 2])  # FP16 has no typed list: refused, named
    add(name="u8", datatype="UINT8", shape=[1, 2]).contents.uint_contents.extend([0, 255])
    add(name="text", datatype="BYTES", shape=[1, 1]).contents.bytes_contents.append(b"hi")
    code, details = code_and_details(stub.ModelInfer, request)
    assert (code, details.startswith("input 'h':")) == (grpc.StatusCode.INVALID_ARGUMENT, True), details
    request.inputs[3].datatype = "FP64"  # a wrong datatype for the model: named too
    code, details = code_and_details(stub.ModelInfer, request)
    assert details == "input 'h': expected shape [-1, 2] FP16, got [1, 2] FP64", details


@pytest.mark.parametrize(
    ("mutate", "code", "message"),
    [
        (lambda r: setattr(r, "model_name", "nope"), "NOT_FOUND", "model 'nope'"),
        (lambda r: setattr(r, "model_name", "../etc"), "INVALID_ARGUMENT", "invalid model name"),
        (lambda r: setattr(r, "model_version", "latest"), "INVALID_ARGUMENT", "invalid model version 'latest'"),
        (lambda r: setattr(r, "model_version", "9"), "NOT_FOUND", "version"),
        (lambda r: r.raw_input_contents.append(b"\0" * (4 * FEATURES - 4)), "INVALID_ARGUMENT",
         f"input 'input': shape [1, {FEATURES}] FP32 needs {4 * FEATURES} bytes, raw_input_contents[0] has "
         f"{4 * FEATURES - 4}"),
        (lambda r: r.raw_input_contents.extend([b"", b""]), "INVALID_ARGUMENT", "raw_input_contents has 2 entries"),
        (lambda r: r.inputs[0].contents.int_contents.append(1), "INVALID_ARGUMENT", "travels in contents.fp32"),
        (lambda r: r.inputs[0].contents.fp32_contents.extend([1.0] * 3), "INVALID_ARGUMENT", "needs 64 elements"),
        (lambda r: r.inputs[0].contents.fp32_contents.extend([float("nan")] * FEATURES), "INVALID_ARGUMENT",
         "NaN or infinity"),
        (lambda r: r.inputs[0].shape.__setitem__(0, 5000), "RESOURCE_EXHAUSTED", "over the limit"),
        (lambda r: r.outputs.add(name="nope") and _zeros(r), "INVALID_ARGUMENT", "unknown output 'nope'"),
        (lambda r: r.parameters["timeout"].MergeFrom(pb.InferParameter(string_param="soon")) or _zeros(r),
         "INVALID_ARGUMENT", "parameters.timeout must be a positive integer"),
        (lambda r: None, "INVALID_ARGUMENT", "input 'input': no data (neither 'data' nor binary_data_size; "
         "over gRPC: contents or raw_input_contents)"),
        (lambda r: r.ClearField("inputs"), "INVALID_ARGUMENT", "at least one input"),
    ],
)  # fmt: skip
def test_bad_requests_get_their_status_and_a_message(stub, mutate, code, message):
    request = digits_request()
    mutate(request)
    got, details = code_and_details(stub.ModelInfer, request)
    assert (got.name, message in details) == (code, True), details
    ok = digits_request()
    ok.raw_input_contents.append(b"\0" * 4 * FEATURES)
    assert stub.ModelInfer(ok).outputs[0].name == "logits"  # the server keeps serving


def test_malformed_protobuf_and_oversized_messages_are_refused_cleanly(served):
    with grpc.insecure_channel(served.grpc) as channel:
        raw = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        code, details = code_and_details(raw, b"\xff\xff\xff\xff")
        assert code is grpc.StatusCode.INVALID_ARGUMENT, details
        assert details.startswith("malformed ModelInferRequest"), details
        code, details = code_and_details(raw, b"\x0a" + b"\xff" * 10)
        assert code is grpc.StatusCode.INVALID_ARGUMENT, details
        big = digits_request(1)
        big.raw_input_contents.append(b"\0" * (2 << 20))  # over max_body_bytes (1 MiB here)
        code, details = code_and_details(pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer, big)
        assert code is grpc.StatusCode.RESOURCE_EXHAUSTED, details
        unknown = channel.unary_unary("/inference.GRPCInferenceService/ModelStreamInfer")
        assert code_and_details(unknown, b"")[0] is grpc.StatusCode.UNIMPLEMENTED
        assert pb_grpc.GRPCInferenceServiceStub(channel).ServerLive(pb.ServerLiveRequest()).live


def test_repository_rpcs_are_refused_unless_enabled(stub):
    code, details = code_and_details(stub.RepositoryIndex, pb.RepositoryIndexRequest())
    assert code is grpc.StatusCode.PERMISSION_DENIED
    assert "repository API is disabled" in details


def test_health_v1_for_kubernetes_probes(served):
    with grpc.insecure_channel(served.grpc) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        serving = health_pb2.HealthCheckResponse.SERVING
        for service in ("", "inference.GRPCInferenceService", "live"):
            assert health.Check(health_pb2.HealthCheckRequest(service=service)).status == serving
        code, _ = code_and_details(health.Check, health_pb2.HealthCheckRequest(service="other"))
        assert code is grpc.StatusCode.NOT_FOUND
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        assert next(watch).status == serving
        watch.cancel()


def test_a_full_queue_says_when_to_retry():
    code, metadata = status_of(OverloadedError("model 'digits': queue full", retry_after_s=2))
    assert code == grpc.StatusCode.UNAVAILABLE.value[0]
    found = dict(metadata)
    assert found["retry-after"] == "2"
    status = status_pb2.Status.FromString(found["grpc-status-details-bin"])
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    assert info.retry_delay.seconds == 2
    assert status.message == "model 'digits': queue full"


def test_auth_deadline_and_repository_on_a_guarded_server(grpc_repo):
    slow = {"max_queue_delay_us": 300_000, "max_batch_size": 64, "wait_when_idle": True}
    with serve(settings_for(grpc_repo, grpc_port=0, **ADMIN, **slow)) as s, grpc.insecure_channel(s.grpc) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        request = digits_request()
        request.raw_input_contents.append(b"\0" * 4 * FEATURES)
        code, details = code_and_details(stub.ModelInfer, request)
        assert (code, details) == (grpc.StatusCode.UNAUTHENTICATED, "authentication required: send "
                                   "'Authorization: Bearer <token>'")  # fmt: skip
        bad = [("authorization", "Bearer wrong")]
        assert code_and_details(stub.ModelInfer, request, metadata=bad)[1] == "invalid bearer token"
        assert stub.ServerLive(pb.ServerLiveRequest()).live  # health stays open (auth_health is off)
        triton = grpcclient.InferenceServerClient(s.grpc)  # tritonclient sends its headers as metadata
        assert triton.get_model_metadata("digits", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}).name == "digits"
        with pytest.raises(InferenceServerException, match="UNAUTHENTICATED"):
            triton.get_model_metadata("digits")
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
        # A deadline shorter than the batch wait: DEADLINE_EXCEEDED, and the server keeps serving.
        code, _ = code_and_details(stub.ModelInfer, request, metadata=TOKEN, timeout=0.05)
        assert code is grpc.StatusCode.DEADLINE_EXCEEDED
        timeout = digits_request()
        timeout.raw_input_contents.append(b"\0" * 4 * FEATURES)
        timeout.parameters["timeout"].int64_param = 20_000  # Triton's server-side timeout, in microseconds
        code, details = code_and_details(stub.ModelInfer, timeout, metadata=TOKEN, timeout=10)
        assert code is grpc.StatusCode.DEADLINE_EXCEEDED, details
        assert "20000 us" in details, details
        assert stub.ModelInfer(request, metadata=TOKEN, timeout=10).model_name == "digits"
        assert s.app.state.drain.inflight == 0
        # A call the client cancels is counted as the client's (499), not as a server error.
        before = _grpc_outcomes(s.url)
        pending = stub.ModelInfer.future(request, metadata=TOKEN, timeout=10)
        time.sleep(0.1)
        pending.cancel()
        deadline = time.monotonic() + 5
        while _grpc_outcomes(s.url) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        after = _grpc_outcomes(s.url)
        assert after.get("client_error", 0) == before.get("client_error", 0) + 1
        assert after.get("server_error", 0) == before.get("server_error", 0)
        # The repository RPCs, enabled with auth: index, unload, load.
        index = stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True), metadata=TOKEN)
        assert {(m.name, m.state) for m in index.models} == {(n, "READY") for n in ("digits", "multi", "encoder")}
        stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="multi"), metadata=TOKEN)
        assert stub.ModelReady(pb.ModelReadyRequest(name="digits"), metadata=TOKEN).ready
        code, _ = code_and_details(stub.ModelReady, pb.ModelReadyRequest(name="multi"), metadata=TOKEN)
        assert code is grpc.StatusCode.NOT_FOUND
        stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="multi"), metadata=TOKEN)
        assert stub.ModelReady(pb.ModelReadyRequest(name="multi"), metadata=TOKEN).ready
        code, _ = code_and_details(stub.RepositoryModelLoad, pb.RepositoryModelLoadRequest(model_name="../x"),
                                   metadata=TOKEN)  # fmt: skip
        assert code is grpc.StatusCode.INVALID_ARGUMENT


def test_every_grpc_call_passes_the_one_guard(served, monkeypatch):
    """A new guard added to ``Guards.admit`` reaches gRPC as it reaches REST (tests/serving/test_guards.py)."""
    from modelpress.serving.errors import ForbiddenError

    kinds = []

    def refuse(kind, authorization):
        kinds.append(kind.value)
        raise ForbiddenError("the new guard says no")

    monkeypatch.setattr(served.app.state.guards, "admit", refuse)
    with grpc.insecure_channel(served.grpc) as channel:
        stub, health = pb_grpc.GRPCInferenceServiceStub(channel), health_pb2_grpc.HealthStub(channel)
        for call, request in [
            (stub.ModelInfer, digits_request()),
            (stub.ModelMetadata, pb.ModelMetadataRequest(name="digits")),
            (stub.ServerReady, pb.ServerReadyRequest()),
            (health.Check, health_pb2.HealthCheckRequest()),
        ]:
            assert code_and_details(call, request) == (grpc.StatusCode.PERMISSION_DENIED, "the new guard says no")
    assert kinds == ["api", "api", "health", "health"]
