"""The inference fast path answers exactly as the FastAPI routes do, byte for byte, errors, auth and drain included."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

from modelpress.serving.app import create_app
from modelpress.serving.rest import fast
from tests.serving.conftest import running, settings_for
from tests.serving.models import FEATURES

pytestmark = pytest.mark.anyio

TOKEN = "fast-path-token"
ROW = [0.25] * FEATURES
BODY = {"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": ROW}]}
JSON = {"Content-Type": "application/json"}


def _binary_body() -> tuple[bytes, dict[str, str]]:
    raw = np.asarray([ROW], dtype=np.float32).tobytes()
    tensor = {"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "parameters": {"binary_data_size": len(raw)}}
    header = {"inputs": [tensor], "outputs": [{"name": "logits", "parameters": {"binary_data": True}}]}
    head = json.dumps(header).encode()
    return head + raw, {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))}


BINARY, BINARY_HEADERS = _binary_body()

# (method, path, body bytes, headers): every answer the inference routes give, good and bad.
REQUESTS: list[tuple[str, str, bytes, dict[str, str]]] = [
    ("POST", "/v2/models/digits/infer", json.dumps(BODY).encode(), JSON),
    ("POST", "/v2/models/digits/infer", json.dumps(BODY | {"id": "a-1", "parameters": {"x": 1}}).encode(), JSON),
    ("POST", "/v2/models/digits/versions/1/infer", json.dumps(BODY).encode(), JSON),
    ("POST", "/v2/models/digits/infer", BINARY, BINARY_HEADERS),
    ("POST", "/v2/models/digits/infer", gzip.compress(json.dumps(BODY).encode()), JSON | {"Content-Encoding": "gzip"}),
    ("POST", "/v1/models/digits:predict", json.dumps({"instances": [ROW, ROW]}).encode(), JSON),
    ("POST", "/v2/models/nope/infer", json.dumps(BODY).encode(), JSON),  # 404
    ("POST", "/v2/models/digits/versions/7/infer", json.dumps(BODY).encode(), JSON),  # 404
    ("POST", "/v2/models/digits/versions/latest/infer", json.dumps(BODY).encode(), JSON),  # 400: version
    ("POST", "/v2/models/.hidden/infer", json.dumps(BODY).encode(), JSON),  # 400: name
    ("POST", "/v1/models/.hidden:predict", b"{}", JSON),  # 400: name
    ("POST", "/v2/models/digits/infer", b'{"inputs": [', JSON),  # 400: malformed JSON
    ("POST", "/v2/models/digits/infer", json.dumps({"inputs": []}).encode(), JSON),  # 400: no inputs
    ("POST", "/v2/models/digits/infer", json.dumps(BODY).encode(), {"Content-Type": "text/plain"}),  # 415
    ("POST", "/v2/models/digits/infer", json.dumps(BODY).encode(), JSON | {"Content-Encoding": "br"}),  # 415
    ("POST", "/v2/models/digits/infer", json.dumps(BODY).encode() + b" " * 4096, JSON),  # 413: max_body_bytes
    ("POST", "/v2/models/digits/infer", b"x" * 5000, JSON | {"Content-Length": "5000"}),  # 413 from the header
    ("POST", "/v1/models/digits:predict", json.dumps({"instances": [[1.0] * 3]}).encode(), JSON),  # 400: shape
    ("POST", "/v2/models/digits/infer/", json.dumps(BODY).encode(), JSON),  # not an inference route: 404
    ("GET", "/v2/models/digits/infer", b"", {}),  # wrong method: 405 from FastAPI
    ("PUT", "/v1/models/digits:predict", b"", {}),  # wrong method: 405
]


@asynccontextmanager
async def both(repository: Path, **overrides: object) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Clients for the same settings with the fast path on and off."""
    async with AsyncExitStack() as stack:
        clients = []
        for on in (True, False):
            app = create_app(settings_for(repository, fast_path=on, **overrides), handle_signals=False)
            clients.append(await stack.enter_async_context(running(app)))
        yield clients[0], clients[1]


async def answers(client: httpx.AsyncClient, requests: list, extra: dict[str, str] | None = None) -> list:
    out = []
    for method, path, body, headers in requests:
        r = await client.request(method, path, content=body, headers=headers | (extra or {}))
        out.append((method, path, r.status_code, r.headers.raw, r.content))
    return out


def _requests_counters(text: str) -> list[str]:
    return sorted(
        line
        for line in text.splitlines()
        if line.startswith(("modelpress_requests_total{", "modelpress_inferences_total{"))
    )


async def test_fast_path_and_fastapi_answer_byte_identically(repo):
    async with both(repo, max_body_bytes=4096) as (quick, framework):
        got, want = await answers(quick, REQUESTS), await answers(framework, REQUESTS)
        statuses = [a[2] for a in got]
        assert {200, 400, 404, 405, 413, 415} <= set(statuses), statuses
        for g, w in zip(got, want, strict=True):
            assert g == w, g[:2]
        # The same requests left the same counts, outcome labels included.
        assert _requests_counters((await quick.get("/metrics")).text) == _requests_counters(
            (await framework.get("/metrics")).text
        )


async def test_the_fast_path_answers_without_fastapi_routing(repo):
    """With our routers taken out of FastAPI's, the fast path still answers; without it, nothing does."""
    async with both(repo) as (quick, framework):
        for client in (quick, framework):
            router = client._transport.app.router
            router.routes = [r for r in router.routes if getattr(r, "path", None) == "/openapi.json"]
        got, want = await answers(quick, REQUESTS[:6]), await answers(framework, REQUESTS[:6])
        assert {a[2] for a in got} == {200}
        assert {a[2] for a in want} <= {404, 405}


async def test_fast_path_answers_with_auth_on(repo):
    """Missing, wrong and right tokens: the same 401s (WWW-Authenticate included) and the same successes."""
    async with both(repo, auth_token=TOKEN) as (quick, framework):
        good = REQUESTS[:6]
        for extra in (None, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {TOKEN}"}):
            got, want = await answers(quick, good, extra), await answers(framework, good, extra)
            assert got == want
            assert {a[2] for a in got} == ({200} if extra and TOKEN in extra["Authorization"] else {401})


async def test_fast_path_answers_503_while_draining(repo):
    async with both(repo) as (quick, framework):
        for client in (quick, framework):
            client._transport.app.state.dataplane.draining = True  # what the drain sets on SIGTERM
        got, want = await answers(quick, REQUESTS[:6]), await answers(framework, REQUESTS[:6])
        assert got == want
        assert {a[2] for a in got} == {503}
        assert json.loads(got[0][4]) == {"error": "server is shutting down"}


async def test_fast_path_counts_requests_in_flight_for_the_drain(repo):
    """A request waiting for its batch is in flight (the drain waits for it); none is once it is answered."""
    slow = {"max_queue_delay_us": 200_000, "max_batch_size": 1000, "wait_when_idle": True}
    app = create_app(settings_for(repo, **slow), handle_signals=False)
    async with running(app) as c:
        pending = asyncio.ensure_future(c.post("/v2/models/digits/infer", json=BODY))
        for _ in range(100):
            if app.state.drain.inflight:
                break
            await asyncio.sleep(0.005)
        assert app.state.drain.inflight == 1
        assert (await pending).status_code == 200
        assert app.state.drain.inflight == 0
        await c.get("/v2/health/ready")  # not counted (health), as before
        assert app.state.drain.inflight == 0


async def test_a_bug_is_the_same_logged_500_on_both_paths(repo, monkeypatch, caplog):
    async def broken(*_args, **_kwargs):
        raise RuntimeError("boom")

    async with both(repo) as (quick, framework):
        for client in (quick, framework):
            monkeypatch.setattr(client._transport.app.state.dataplane, "infer", broken)
        got, want = await answers(quick, REQUESTS[:1]), await answers(framework, REQUESTS[:1])
        assert got == want
        assert got[0][2] == 500
        assert json.loads(got[0][4]) == {"error": "internal error: RuntimeError"}
        logged = [r for r in caplog.records if r.getMessage() == "unexpected error on /v2/models/digits/infer"]
        assert len(logged) == 2  # once per path, with the traceback
        counters = _requests_counters((await quick.get("/metrics")).text)
        assert any('outcome="server_error"' in line and line.endswith(" 1.0") for line in counters), counters


async def test_openapi_still_declares_the_inference_routes(repo):
    async with both(repo) as (quick, framework):
        spec = (await quick.get("/openapi.json")).json()
        assert spec == (await framework.get("/openapi.json")).json()
    assert "post" in spec["paths"]["/v2/models/{model_name}/infer"]
    assert "post" in spec["paths"]["/v2/models/{model_name}/versions/{model_version}/infer"]
    assert "post" in spec["paths"]["/v1/models/{model_name}:predict"]


@pytest.mark.parametrize(
    ("method", "path", "root_path", "expected"),
    [
        ("POST", "/v2/models/digits/infer", "", ("infer_response", "digits", None)),
        ("POST", "/v2/models/digits/versions/3/infer", "", ("infer_response", "digits", "3")),
        ("POST", "/v2/models/stats/infer", "", ("infer_response", "stats", None)),
        ("POST", "/v1/models/digits:predict", "", ("predict_response", "digits", None)),
        ("POST", "/v1/models/a:predict:predict", "", ("predict_response", "a:predict", None)),  # as Starlette's regex
        ("POST", "/v2/models//infer", "", None),
        ("POST", "/v2/models/a/b/infer", "", None),
        ("POST", "/v2/models/digits/versions/infer", "", None),
        ("POST", "/v2/models/digits/infer/", "", None),
        ("POST", "/v2/models/digits/ready", "", None),
        ("GET", "/v2/models/digits/infer", "", None),
        ("POST", "/v2/models/digits/infer", "/prefix", None),  # behind a root_path: left to Starlette
    ],
)
def test_match_takes_exactly_the_inference_routes(method, path, root_path, expected):
    scope = {"type": "http", "method": method, "path": path, "root_path": root_path}
    found = fast.match(scope)
    assert (None if found is None else (found[0].__name__, found[1], found[2])) == expected


def test_match_leaves_other_scopes_alone():
    assert fast.match({"type": "websocket", "path": "/v2/models/digits/infer"}) is None
    assert fast.match({"type": "lifespan"}) is None
