"""The V2/V1 protocol through the app in-process (httpx ASGITransport)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.serving.conftest import client_for
from tests.serving.models import CLASSES, FEATURES, LABELS, classifier_reference

pytestmark = pytest.mark.anyio


def _x(rows: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, FEATURES)).astype(np.float32)


async def test_health_and_server_metadata(repo):
    async with client_for(repo) as c:
        assert (await c.get("/v2/health/live")).status_code == 200
        assert (await c.get("/v2/health/ready")).json() == {"ready": True}
        meta = (await c.get("/v2")).json()
        assert meta["name"] == "modelpress"
        assert {"binary_tensor_data", "model_repository", "statistics"} <= set(meta["extensions"])


async def test_model_metadata_has_dynamic_dims_platform_and_real_providers(repo):
    async with client_for(repo) as c:
        meta = (await c.get("/v2/models/digits")).json()
        assert meta["platform"] == "onnx_onnxv1"
        assert meta["versions"] == ["1"]
        assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, FEATURES]}]
        assert meta["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, CLASSES]}]
        assert meta["parameters"]["providers"] == ["CPUExecutionProvider"]
        assert (await c.get("/v2/models/digits/versions/1")).json() == meta
        assert (await c.get("/v2/models/digits/ready")).status_code == 200
        assert (await c.get("/v2/models/digits/versions/1/ready")).status_code == 200
        missing = await c.get("/v2/models/digits/versions/7")
        assert missing.status_code == 404
        assert "version '7'" in missing.json()["error"]


async def test_json_infer_flat_and_nested_match_reference(repo, digits_weights):
    x = _x(3)
    want = classifier_reference(x, *digits_weights)
    async with client_for(repo) as c:
        for data in (x.reshape(-1).tolist(), x.tolist()):
            body = {"id": "req-7", "parameters": {"trace": "abc"}, "inputs": [
                {"name": "input", "shape": [3, FEATURES], "datatype": "FP32", "data": data}]}  # fmt: skip
            r = await c.post("/v2/models/digits/infer", json=body)
            assert r.status_code == 200, r.text
            out = r.json()
            assert out["id"] == "req-7"
            assert out["parameters"] == {"trace": "abc"}
            assert out["model_name"] == "digits"
            assert out["model_version"] == "1"
            (logits,) = out["outputs"]
            assert logits["shape"] == [3, CLASSES]
            assert logits["datatype"] == "FP32"
            np.testing.assert_allclose(np.array(logits["data"]).reshape(3, CLASSES), want, rtol=1e-5, atol=1e-5)


async def test_versioned_infer_route(repo):
    async with client_for(repo) as c:
        body = {"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": _x(1).tolist()}]}
        assert (await c.post("/v2/models/digits/versions/1/infer", json=body)).status_code == 200
        assert (await c.post("/v2/models/digits/versions/2/infer", json=body)).status_code == 404


def _multi_body(rows: int = 2, seq: int = 3) -> dict:
    return {
        "inputs": [
            {"name": "ids", "shape": [rows, seq], "datatype": "INT64", "data": list(range(rows * seq))},
            {"name": "mask", "shape": [rows, seq], "datatype": "BOOL", "data": [True, False, True] * rows},
            {"name": "x", "shape": [rows, 3], "datatype": "FP64", "data": [[0.5, 1.5, -2.0]] * rows},
            {"name": "h", "shape": [rows, 2], "datatype": "FP16", "data": [1.5, -0.25] * rows},
            {"name": "u8", "shape": [rows, 2], "datatype": "UINT8", "data": [0, 255] * rows},
            {"name": "text", "shape": [rows, 1], "datatype": "BYTES", "data": ["héllo", "world"][:rows]},
        ]
    }


async def test_every_datatype_and_output_selection(repo):
    async with client_for(repo) as c:
        r = await c.post("/v2/models/multi/infer", json=_multi_body())
        assert r.status_code == 200, r.text
        out = {o["name"]: o for o in r.json()["outputs"]}
        assert out["sum_ids"] == {"name": "sum_ids", "datatype": "INT64", "shape": [2, 1], "data": [3, 12]}
        assert out["not_mask"]["data"] == [False, True, False] * 2
        assert out["x2"]["data"] == [1.0, 3.0, -4.0] * 2
        assert out["h2"]["datatype"] == "FP16"
        assert out["h2"]["data"] == [3.0, -0.5] * 2
        assert out["u8_out"]["data"] == [0, 255] * 2
        assert out["text_out"] == {"name": "text_out", "datatype": "BYTES", "shape": [2, 1], "data": ["héllo", "world"]}
        body = _multi_body() | {"outputs": [{"name": "x2"}, {"name": "sum_ids"}]}
        r = await c.post("/v2/models/multi/infer", json=body)
        assert [o["name"] for o in r.json()["outputs"]] == ["x2", "sum_ids"]


async def test_binary_request_and_response(repo, digits_weights):
    x = _x(2, seed=5)
    header = {
        "inputs": [{"name": "input", "shape": [2, FEATURES], "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes}}],
        "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
    }  # fmt: skip
    import json

    head = json.dumps(header).encode()
    async with client_for(repo) as c:
        r = await c.post(
            "/v2/models/digits/infer",
            content=head + x.tobytes(),
            headers={"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"},
        )
        assert r.status_code == 200, r.text
        n = int(r.headers["Inference-Header-Content-Length"])
        meta = json.loads(r.content[:n])
        (out,) = meta["outputs"]
        assert out["parameters"]["binary_data_size"] == 2 * CLASSES * 4
        got = np.frombuffer(r.content[n:], dtype=np.float32).reshape(2, CLASSES)
        np.testing.assert_allclose(got, classifier_reference(x, *digits_weights), rtol=1e-5, atol=1e-5)


async def test_binary_bytes_and_fp16_inputs(repo):
    import json
    import struct

    body = _multi_body(rows=1)
    h = np.array([[2.0, 0.5]], dtype=np.float16)
    text = struct.pack("<I", 3) + b"abc"
    for item in body["inputs"]:
        if item["name"] == "h":
            item.pop("data")
            item["parameters"] = {"binary_data_size": h.nbytes}
        if item["name"] == "text":
            item.pop("data")
            item["parameters"] = {"binary_data_size": len(text)}
    body["parameters"] = {"binary_data_output": True}
    head = json.dumps(body).encode()
    async with client_for(repo) as c:
        r = await c.post("/v2/models/multi/infer", content=head + h.tobytes() + text,
                         headers={"Inference-Header-Content-Length": str(len(head))})  # fmt: skip
        assert r.status_code == 200, r.text
        n = int(r.headers["Inference-Header-Content-Length"])
        outputs = json.loads(r.content[:n])["outputs"]
        offsets, pos = {}, n
        for o in outputs:
            size = o["parameters"]["binary_data_size"]
            offsets[o["name"]] = r.content[pos : pos + size]
            pos += size
        assert np.frombuffer(offsets["h2"], dtype=np.float16).tolist() == [4.0, 1.0]
        assert offsets["text_out"] == text


async def test_v1_predict_applies_standardization_and_softmax(repo, digits_weights):
    from modelpress.serving.manifest import read_manifest

    manifest = read_manifest(repo / "digits" / "1")
    raw = np.random.default_rng(3).uniform(0, 8, (2, FEATURES))
    pre = (raw - np.array(manifest.preprocessing.mean)) / np.array(manifest.preprocessing.std)
    logits = classifier_reference(pre.astype(np.float32), *digits_weights)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    async with client_for(repo) as c:
        r = await c.post("/v1/models/digits:predict", json={"instances": raw.tolist()})
        assert r.status_code == 200, r.text
        preds = r.json()["predictions"]
    assert len(preds) == 2
    for pred, p in zip(preds, probs, strict=True):
        assert pred["label"] == LABELS[int(p.argmax())]
        np.testing.assert_allclose([pred["probabilities"][lab] for lab in LABELS], p, rtol=1e-4, atol=1e-6)


async def test_v1_model_status(repo):
    async with client_for(repo) as c:
        status = (await c.get("/v1/models/digits")).json()
        # KServe V1's fields, and OpenAI's model card on the same path (serving/rest/openai_compat.py)
        assert {k: status[k] for k in ("name", "ready", "id", "object")} == {
            "name": "digits",
            "ready": True,
            "id": "digits",
            "object": "model",
        }
        assert (await c.get("/v1/models/nope")).status_code == 404


async def test_v1_predict_multi_input_model(repo):
    inst = {"ids": [1, 2], "mask": [True, False], "x": [1.0, 2.0, 3.0], "h": [1.0, 2.0], "u8": [3, 4], "text": ["a"]}
    async with client_for(repo) as c:
        r = await c.post("/v1/models/multi:predict", json={"instances": [inst, inst]})
        assert r.status_code == 200, r.text
        preds = r.json()["predictions"]
    assert preds[0]["sum_ids"] == [3]
    assert preds[1]["x2"] == [2.0, 4.0, 6.0]
    assert preds[0]["text_out"] == ["a"]


async def test_stats_extension_counts(repo):
    async with client_for(repo) as c:
        body = {"inputs": [{"name": "input", "shape": [4, FEATURES], "datatype": "FP32", "data": _x(4).tolist()}]}
        for _ in range(3):
            assert (await c.post("/v2/models/digits/infer", json=body)).status_code == 200
        bad = {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
        assert (await c.post("/v2/models/digits/infer", json=bad)).status_code == 400
        (stats,) = (await c.get("/v2/models/digits/stats")).json()["model_stats"]
        every = (await c.get("/v2/models/stats")).json()["model_stats"]
        assert {s["name"] for s in every} == {"digits", "multi"}
        assert (await c.get("/v2/models/digits/versions/1/stats")).json()["model_stats"] == [stats]
    assert stats["inference_count"] == 12
    assert stats["inference_stats"]["success"]["count"] == 3
    assert stats["inference_stats"]["fail"]["count"] == 1
    assert stats["inference_stats"]["queue"]["count"] == 3
    assert stats["execution_count"] == 3
    assert stats["inference_stats"]["compute_infer"]["ns"] > 0


async def test_empty_repository_is_live_but_not_ready(tmp_path):
    async with client_for(tmp_path) as c:
        assert (await c.get("/v2/health/live")).status_code == 200
        r = await c.get("/v2/health/ready")
        assert r.status_code == 503
        assert "error" in r.json()


async def test_openapi_describes_every_endpoint(repo):
    async with client_for(repo) as c:
        spec = (await c.get("/openapi.json")).json()
    paths = spec["paths"]
    model = "/v2/models/{model_name}"
    expected = [
        "/v2", "/v2/health/live", "/v2/health/ready", model, f"{model}/versions/{{model_version}}",
        f"{model}/ready", f"{model}/infer", f"{model}/versions/{{model_version}}/infer", f"{model}/stats",
        "/v1/models/{model_name}:predict", "/v2/repository/index", "/v2/repository/models/{model_name}/load",
        "/v2/repository/models/{model_name}/unload", "/metrics",
    ]  # fmt: skip
    for path in expected:
        assert path in paths, path
    infer = paths["/v2/models/{model_name}/infer"]["post"]
    assert (
        infer["requestBody"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/InferenceRequest"
    )
    assert {"400", "404", "413", "415", "503"} <= set(infer["responses"])
    assert set(infer["responses"]["200"]["content"]) == {"application/json", "application/octet-stream"}
    assert "application/octet-stream" in infer["requestBody"]["content"]
    schemas = spec["components"]["schemas"]
    for name in ("InferenceRequest", "RequestInput", "InferenceResponse", "PredictRequest", "ModelMetadata"):
        assert name in schemas
    assert "inputs" in schemas["InferenceRequest"]["properties"]


def test_inference_routes_are_matched_first():
    """FastAPI tries routes in order; the hot path must not pay for every metadata route before it."""
    from modelpress.serving.rest import v2

    paths = [route.path for route in v2.router.routes]
    assert paths[:2] == ["/v2/models/{model_name}/infer", "/v2/models/{model_name}/versions/{model_version}/infer"]
    assert paths.index("/v2/models/stats") < paths.index("/v2/models/{model_name}")  # order otherwise kept


async def test_memory_settings_reach_every_served_session(repo, digits_weights):
    from modelpress.serving.app import create_app
    from tests.serving.conftest import running, settings_for

    settings = settings_for(repo, cpu_mem_arena=False, mem_pattern=False, shared_cpu_allocator=True)
    app = create_app(settings, handle_signals=False)
    async with running(app) as c:
        for name in ("digits", "multi"):
            options = app.state.dataplane.repository.get(name).runtime.session_options()
            memory = (options["cpu_mem_arena"], options["mem_pattern"], options["shared_cpu_allocator"])
            assert memory == ("0", "0", "1")
        x = np.random.default_rng(3).standard_normal((3, FEATURES)).astype(np.float32)
        body = {"inputs": [{"name": "input", "shape": [3, FEATURES], "datatype": "FP32", "data": x.ravel().tolist()}]}
        r = await c.post("/v2/models/digits/infer", json=body)
    assert r.status_code == 200, r.text
    got = np.array(r.json()["outputs"][0]["data"], dtype=np.float32).reshape(3, CLASSES)
    np.testing.assert_allclose(got, classifier_reference(x, *digits_weights), rtol=1e-5, atol=1e-5)
