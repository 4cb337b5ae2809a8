"""TLS on REST and gRPC: clients over TLS, plain requests refused cleanly, mutual TLS, rotation without restart."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from modelpress.serving.grpc.generated import open_inference_pb2 as pb
from modelpress.serving.grpc.generated import open_inference_pb2_grpc as pb_grpc
from modelpress.serving.server import ServeError, check
from modelpress.serving.settings import SettingsError, load_settings
from tests.serving.conftest import settings_for
from tests.serving.grpc.conftest import Served, serve
from tests.serving.models import FEATURES
from tests.serving.tls_certs import Issued, issue, make_ca, write

pytestmark = pytest.mark.slow  # servers with TLS: a few seconds

BODY = {"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": [0.5] * FEATURES}]}


@pytest.fixture(scope="module")
def ca() -> Issued:
    return make_ca()


@contextmanager
def tls_server(repo: Path, folder: Path, ca: Issued, *, mutual: bool, reload_s: float = 0.1) -> Iterator[Served]:
    cert, key = write(folder, "server", issue(ca, "server-1", server=True))
    (folder / "ca.crt").write_bytes(ca.cert)
    extra = {"tls_client_ca": folder / "ca.crt"} if mutual else {}
    settings = settings_for(repo, grpc_port=0, tls_cert=cert, tls_key=key, tls_reload_s=reload_s, **extra)
    with serve(settings) as served:
        yield served


def _rest_ctx(ca: Issued, client: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=ca.cert.decode())
    if client is not None:
        context.load_cert_chain(*client)
    return context


def _grpc_infer(target: str, credentials: grpc.ChannelCredentials) -> pb.ModelInferResponse:
    request = pb.ModelInferRequest(model_name="digits", raw_input_contents=[b"\0" * 4 * FEATURES])
    request.inputs.add(name="input", datatype="FP32", shape=[1, FEATURES])
    with grpc.secure_channel(target, credentials) as channel:
        return pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)


def test_clients_work_over_tls_and_plain_requests_fail_cleanly(repo, tmp_path, ca):
    with tls_server(repo, tmp_path, ca, mutual=False) as s:
        r = httpx.post(f"https://{s.url}/v2/models/digits/infer", json=BODY, verify=_rest_ctx(ca))
        assert r.status_code == 200
        client = grpcclient.InferenceServerClient(s.grpc, ssl=True, root_certificates=str(tmp_path / "ca.crt"))
        tensor = grpcclient.InferInput("input", [1, FEATURES], "FP32")
        tensor.set_data_from_numpy(np.full((1, FEATURES), 0.5, np.float32))
        assert client.infer("digits", [tensor]).as_numpy("logits").tolist() == [r.json()["outputs"][0]["data"]]
        # Plain HTTP / plaintext gRPC to the TLS ports: an error at the client, and the server keeps serving.
        with pytest.raises(httpx.TransportError):
            httpx.post(f"http://{s.url}/v2/models/digits/infer", json=BODY, timeout=5)
        with grpc.insecure_channel(s.grpc) as channel, pytest.raises(grpc.RpcError) as plain:
            pb_grpc.GRPCInferenceServiceStub(channel).ServerLive(pb.ServerLiveRequest(), timeout=5)
        assert plain.value.code() is grpc.StatusCode.UNAVAILABLE
        assert httpx.get(f"https://{s.url}/v2/health/ready", verify=_rest_ctx(ca)).status_code == 200
        assert _grpc_infer(s.grpc, grpc.ssl_channel_credentials(ca.cert)).model_name == "digits"


def test_mutual_tls_refuses_a_client_without_a_certificate(repo, tmp_path, ca):
    client = write(tmp_path, "client", issue(ca, "client-1", server=False))
    stranger = write(tmp_path, "stranger", issue(make_ca("another CA"), "client-2", server=False))
    with tls_server(repo, tmp_path, ca, mutual=True) as s:
        for who in (None, stranger):  # no certificate, or one from a CA the server does not trust
            with pytest.raises((httpx.TransportError, ssl.SSLError)):
                httpx.get(f"https://{s.url}/v2/health/ready", verify=_rest_ctx(ca, who), timeout=5)
            creds = grpc.ssl_channel_credentials(ca.cert, *(p.read_bytes() for p in reversed(who or ())))
            with pytest.raises(grpc.RpcError) as refused:
                _grpc_infer(s.grpc, creds)
            assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        assert httpx.get(f"https://{s.url}/v2/health/ready", verify=_rest_ctx(ca, client)).status_code == 200
        creds = grpc.ssl_channel_credentials(ca.cert, client[1].read_bytes(), client[0].read_bytes())
        assert _grpc_infer(s.grpc, creds).model_name == "digits"


def test_a_rotated_certificate_is_served_without_a_restart(repo, tmp_path, ca):
    rotated_ca = make_ca("rotated CA")
    with tls_server(repo, tmp_path, ca, mutual=False) as s:
        host, port = s.url.split(":")
        first = ssl.get_server_certificate((host, int(port)))
        new = issue(rotated_ca, "server-2", server=True)
        # cert-manager writes the new pair; a key written before its certificate must not break the server.
        (tmp_path / "server.key").write_bytes(new.key)
        time.sleep(0.3)
        assert httpx.get(f"https://{s.url}/v2/health/live", verify=_rest_ctx(ca)).status_code == 200
        (tmp_path / "server.crt").write_bytes(new.cert)
        deadline = time.monotonic() + 10
        while ssl.get_server_certificate((host, int(port))) == first and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ssl.get_server_certificate((host, int(port))) == ssl.DER_cert_to_PEM_cert(
            ssl.PEM_cert_to_DER_cert(new.cert.decode())
        )
        assert httpx.get(f"https://{s.url}/v2/health/live", verify=_rest_ctx(rotated_ca)).status_code == 200
        # gRPC: a new connection gets the new certificate (a client trusting only the new CA gets in).
        assert _grpc_infer(s.grpc, grpc.ssl_channel_credentials(rotated_ca.cert)).model_name == "digits"
        with pytest.raises(grpc.RpcError):
            _grpc_infer(s.grpc, grpc.ssl_channel_credentials(ca.cert))


def test_tls_settings_are_checked_at_start(repo, tmp_path, ca):
    with pytest.raises(SettingsError, match="needs both tls_cert and tls_key"):
        load_settings(repository=repo, tls_cert=tmp_path / "x.crt")
    with pytest.raises(SettingsError, match="tls_client_ca"):
        load_settings(repository=repo, tls_client_ca=tmp_path / "ca.crt")
    with pytest.raises(ServeError, match="does not exist"):
        check(load_settings(repository=repo, tls_cert=tmp_path / "x.crt", tls_key=tmp_path / "x.key"))
    cert, _ = write(tmp_path, "server", issue(ca, "s", server=True))
    _, other_key = write(tmp_path, "other", issue(ca, "o", server=True))
    with pytest.raises(ServeError, match="TLS"):
        check(load_settings(repository=repo, tls_cert=cert, tls_key=other_key))
