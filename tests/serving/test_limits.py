"""Limits before the model: tensor elements and batch rows (413), model names and versions from the URL (400)."""

from __future__ import annotations

import json

import pytest

from modelpress.serving.protocol.codec import HEADER_LENGTH
from tests.serving.conftest import ADMIN, client_for
from tests.serving.models import FEATURES

pytestmark = pytest.mark.anyio


def v2_body(rows: int, features: int = FEATURES) -> dict:
    data = [0.0] * rows * features
    return {"inputs": [{"name": "input", "shape": [rows, features], "datatype": "FP32", "data": data}]}


async def test_batch_rows_over_the_limit_are_413(repo):
    async with client_for(repo, max_batch_rows=8) as c:
        assert (await c.post("/v2/models/digits/infer", json=v2_body(8))).status_code == 200
        r = await c.post("/v2/models/digits/infer", json=v2_body(9))
        assert r.status_code == 413
        assert r.json()["error"] == (
            "input 'input': 9 rows in one request, over the limit of 8 (max_batch_rows); split it into several requests"
        )
        ok = await c.post("/v1/models/digits:predict", json={"instances": [[1.0] * FEATURES] * 8})
        assert ok.status_code == 200
        r = await c.post("/v1/models/digits:predict", json={"instances": [[1.0] * FEATURES] * 9})
        assert r.status_code == 413
        assert "instances: 9 rows" in r.json()["error"]
        metrics = (await c.get("/metrics")).text
        refused = 'modelpress_requests_total{model="digits",outcome="client_error",protocol="v2",version="1"} 1.0'
        assert refused in metrics


async def test_tensor_elements_over_the_limit_are_413_before_decoding(repo):
    async with client_for(repo, max_tensor_elements=FEATURES * 4) as c:
        assert (await c.post("/v2/models/digits/infer", json=v2_body(4))).status_code == 200
        r = await c.post("/v2/models/digits/infer", json=v2_body(5))
        assert r.status_code == 413
        assert "has 320 elements, over the limit of 256 (max_tensor_elements)" in r.json()["error"]
    async with client_for(repo) as c:
        # A tiny binary request declaring an enormous BYTES shape: refused from the header alone.
        header = {"inputs": [{"name": "text", "shape": [1, 10**12], "datatype": "BYTES",
                              "parameters": {"binary_data_size": 8}}]}  # fmt: skip
        raw = json.dumps(header).encode()
        r = await c.post(
            "/v2/models/multi/infer",
            content=raw + b"\x04\x00\x00\x00abcd",
            headers={HEADER_LENGTH: str(len(raw)), "Content-Type": "application/octet-stream"},
        )
        assert r.status_code == 413
        assert "1000000000000 elements" in r.json()["error"]
        # A negative dimension is not a size problem: a 400 names it.
        bad = {"inputs": [{"name": "input", "shape": [-3, FEATURES], "datatype": "FP32", "data": [0.0]}]}
        r = await c.post("/v2/models/digits/infer", json=bad)
        assert r.status_code == 400
        assert "negative dimension" in r.json()["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/%2E%2E/infer",
        "/v2/models/.hidden",
        "/v2/models/%2E%2E%5Cetc/ready",
        "/v1/models/..:predict",
        "/v2/models/digits%00/stats",
        "/v2/models/" + "a" * 200,
    ],
)
async def test_unsafe_model_names_are_400(repo, path):
    async with client_for(repo) as c:
        r = await (c.post(path, json=v2_body(1)) if path.endswith(("infer", "predict")) else c.get(path))
        assert r.status_code == 400, r.text
        assert r.json()["error"].startswith("invalid model name")


async def test_model_versions_must_be_numbers(repo):
    async with client_for(repo) as c:
        for version in ("%2E%2E", "1a", "-1", "1e3", "9" * 30):
            r = await c.get(f"/v2/models/digits/versions/{version}")
            assert r.status_code == 400, version
            assert r.json()["error"].startswith("invalid model version")
        assert (await c.get("/v2/models/digits/versions/1")).status_code == 200
        assert (await c.get("/v2/models/digits/versions/7")).status_code == 404


async def test_repository_load_never_leaves_the_repository(tmp_path):
    """A folder beside the repository, reachable by '..', is never loaded."""
    from tests.serving.models import publish_classifier

    repository = tmp_path / "repository"
    publish_classifier(repository)
    publish_classifier(tmp_path, name="outside")  # tmp_path/outside/1 would be ../outside from the repository
    async with client_for(repository, **ADMIN) as c:
        for name in ("..%2Foutside", "%2E%2E", ".."):
            r = await c.post(f"/v2/repository/models/{name}/load")
            assert r.status_code in (400, 404), name
        r = await c.post("/v2/repository/models/%2E%2E/load")
        assert r.status_code == 400
        names = {e["name"] for e in (await c.post("/v2/repository/index")).json()}
        assert names == {"digits"}
