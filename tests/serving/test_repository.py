"""Repository API: index, load (hot reload with atomic swap under load), tampered versions, unload."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.serving.conftest import ADMIN, client_for
from tests.serving.models import FEATURES, classifier_reference, publish_classifier, publish_multi

pytestmark = pytest.mark.anyio

X = np.random.default_rng(11).standard_normal((1, FEATURES)).astype(np.float32)
BODY = {"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": X.tolist()}]}


@pytest.fixture
def own_repo(tmp_path: Path) -> tuple[Path, tuple[np.ndarray, np.ndarray]]:
    weights = publish_classifier(tmp_path, seed=0)
    publish_multi(tmp_path)
    return tmp_path, weights


def logits_of(response) -> np.ndarray:
    out = response.json()["outputs"][0]
    return np.array(out["data"], dtype=np.float32).reshape(out["shape"])


async def test_index_lists_versions_with_state(own_repo):
    root, _ = own_repo
    async with client_for(root, **ADMIN) as c:
        r = await c.post("/v2/repository/index")
        assert r.status_code == 200
        assert {(e["name"], e["version"], e["state"]) for e in r.json()} == {
            ("digits", "1", "READY"),
            ("multi", "1", "READY"),
        }
        r = await c.post("/v2/repository/index", json={"ready": True})
        assert len(r.json()) == 2


async def test_hot_reload_under_load_has_zero_failures(own_repo):
    root, w1 = own_repo
    async with client_for(root, **ADMIN, max_queue_delay_us=1000) as c:
        stop = asyncio.Event()
        answers: list = []

        async def client_loop() -> None:
            for _ in range(400):  # bounded even if the reload never finished
                if stop.is_set():
                    return
                answers.append(await c.post("/v2/models/digits/infer", json=BODY))

        loops = [asyncio.create_task(client_loop()) for _ in range(4)]
        for _ in range(500):  # until traffic flows (bounded: 10 s)
            if len(answers) >= 8:
                break
            await asyncio.sleep(0.02)
        w2 = publish_classifier(root, version=2, seed=1)
        r = await c.post("/v2/repository/models/digits/load")
        assert r.status_code == 200, r.text
        assert r.json() == {"name": "digits", "version": "2", "state": "READY"}
        after_swap = len(answers)
        for _ in range(500):  # until the new version has answered a few (bounded: 10 s)
            if len(answers) >= after_swap + 8:
                break
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.gather(*loops)
        meta = (await c.get("/v2/models/digits")).json()
    codes = [a.status_code for a in answers]
    assert codes.count(200) == len(codes), [a.text for a in answers if a.status_code != 200][:3]
    assert len(answers) > after_swap > 0
    versions = [a.json()["model_version"] for a in answers]
    assert versions[0] == "1"
    assert versions[-1] == "2"
    v1, v2 = classifier_reference(X, *w1), classifier_reference(X, *w2)
    for a in answers:
        want = v1 if a.json()["model_version"] == "1" else v2
        np.testing.assert_allclose(logits_of(a), want, rtol=1e-5, atol=1e-5)
    assert meta["versions"] == ["2"]


async def test_tampered_version_is_refused_and_old_keeps_serving(own_repo):
    root, w1 = own_repo
    async with client_for(root, **ADMIN) as c:
        v2 = publish_classifier(root, version=2, seed=3) and root / "digits" / "2"
        model = v2 / "model.onnx"
        data = bytearray(model.read_bytes())
        data[-5] ^= 0xFF  # same size, different bytes
        model.write_bytes(bytes(data))
        r = await c.post("/v2/repository/models/digits/load")
        assert r.status_code == 400
        assert "sha256" in r.json()["error"]
        assert "does not match the manifest" in r.json()["error"]
        ok = await c.post("/v2/models/digits/infer", json=BODY)
        assert ok.json()["model_version"] == "1"
        np.testing.assert_allclose(logits_of(ok), classifier_reference(X, *w1), rtol=1e-5, atol=1e-5)
        index = {(e["name"], e["version"]): e for e in (await c.post("/v2/repository/index")).json()}
        assert index[("digits", "1")]["state"] == "READY"
        assert index[("digits", "2")]["state"] == "UNAVAILABLE"
        assert (await c.get("/v2/health/ready")).status_code == 200


async def test_truncated_and_invalid_versions_are_refused_with_reason(own_repo):
    root, _ = own_repo
    async with client_for(root, **ADMIN) as c:
        publish_classifier(root, version=2, seed=3)
        model = root / "digits" / "2" / "model.onnx"
        model.write_bytes(model.read_bytes()[:-10])
        r = await c.post("/v2/repository/models/digits/load")
        assert r.status_code == 400
        assert "truncated or changed" in r.json()["error"]
        (root / "digits" / "2" / "manifest.json").write_text("{not json")
        r = await c.post("/v2/repository/models/digits/load")
        assert r.status_code == 400
        assert "invalid manifest" in r.json()["error"]
        assert (await c.post("/v2/repository/models/nothere/load")).status_code == 404
        assert (await c.post("/v2/repository/models/..%2F..%2Fetc/load")).status_code == 404
        assert (await c.post("/v2/models/digits/infer", json=BODY)).json()["model_version"] == "1"


async def test_manifest_that_lies_about_the_model_is_refused(own_repo):
    root, _ = own_repo
    from modelpress.serving.manifest import read_manifest, write_manifest

    async with client_for(root, **ADMIN) as c:
        publish_classifier(root, version=2, seed=4)
        manifest = read_manifest(root / "digits" / "2")
        manifest.inputs[0].name = "pixels"
        write_manifest(manifest, root / "digits" / "2")
        r = await c.post("/v2/repository/models/digits/load")
        assert r.status_code == 400
        assert "manifest lists input 'pixels'" in r.json()["error"]


async def test_unload_then_load_again(own_repo):
    root, _ = own_repo
    async with client_for(root, **ADMIN) as c:
        assert (await c.post("/v2/repository/models/multi/unload")).status_code == 200
        r = await c.get("/v2/models/multi")
        assert r.status_code == 404
        assert (await c.post("/v2/repository/models/multi/unload")).status_code == 404
        assert (await c.get("/v2/health/ready")).status_code == 200  # digits still served, multi not expected
        assert (await c.post("/v2/repository/models/multi/load")).status_code == 200
        assert (await c.get("/v2/models/multi/ready")).status_code == 200


async def test_a_model_that_fails_at_startup_keeps_a_strict_server_not_ready(tmp_path):
    publish_classifier(tmp_path)
    publish_classifier(tmp_path, name="broken")
    (tmp_path / "broken" / "1" / "model.onnx").write_bytes(b"not onnx")
    async with client_for(tmp_path, **ADMIN, strict_readiness=True) as c:
        assert (await c.get("/v2/health/ready")).status_code == 503
        assert (await c.post("/v2/models/digits/infer", json=BODY)).status_code == 200
        r = await c.get("/v2/models/broken")
        assert r.status_code == 404
        assert "last load failed" in r.json()["error"]
        shutil.rmtree(tmp_path / "broken" / "1")
        publish_classifier(tmp_path, name="broken", version=1)
        assert (await c.post("/v2/repository/models/broken/load")).status_code == 200
        assert (await c.get("/v2/health/ready")).status_code == 200


async def test_a_model_that_fails_at_startup_leaves_the_others_ready_by_default(tmp_path):
    publish_classifier(tmp_path)
    publish_classifier(tmp_path, name="broken")
    (tmp_path / "broken" / "1" / "model.onnx").write_bytes(b"not onnx")
    async with client_for(tmp_path) as c:
        assert (await c.get("/v2/health/ready")).status_code == 200
        assert (await c.get("/v2/models/digits/ready")).status_code == 200
        r = await c.get("/v2/models/broken/ready")
        assert r.status_code == 404
        assert "expected 2753 bytes" in r.json()["error"] or "truncated or changed" in r.json()["error"]


async def test_version_policy_serves_several_versions_and_requests_name_them(tmp_path):
    w1 = publish_classifier(tmp_path, seed=0)
    w2 = publish_classifier(tmp_path, version=2, seed=1)
    publish_classifier(tmp_path, version=3, seed=2)
    async with client_for(tmp_path, version_policy="digits=specific:1,2") as c:
        assert (await c.get("/v2/models/digits")).json()["versions"] == ["1", "2"]
        unnamed = await c.post("/v2/models/digits/infer", json=BODY)
        assert unnamed.json()["model_version"] == "2"  # the newest served
        np.testing.assert_allclose(logits_of(unnamed), classifier_reference(X, *w2), rtol=1e-5, atol=1e-5)
        one = await c.post("/v2/models/digits/versions/1/infer", json=BODY)
        assert one.status_code == 200
        np.testing.assert_allclose(logits_of(one), classifier_reference(X, *w1), rtol=1e-5, atol=1e-5)
        r = await c.post("/v2/models/digits/versions/3/infer", json=BODY)
        assert r.status_code == 404
        assert "served versions: ['1', '2']" in r.json()["error"]
        assert (await c.get("/v2/models/digits/versions/3/ready")).status_code == 404


@pytest.mark.parametrize(
    ("overrides", "in_flight"), [({}, 1), ({"intra_op_threads": 1}, 2), ({"dynamic_batching": False}, 2)]
)
async def test_a_model_runs_as_many_batches_at_once_as_fit_the_cpus(own_repo, monkeypatch, overrides, in_flight):
    """A batch on ORT's default threads spans the CPUs: the model's next one forms meanwhile instead of fighting it;
    requests run one by one keep both compute threads."""
    from modelpress.serving import repository
    from modelpress.serving.app import create_app
    from tests.serving.conftest import running, settings_for

    monkeypatch.setattr(repository, "available_cpus", lambda quota=None: 2.0)
    root, _ = own_repo
    app = create_app(settings_for(root, compute_threads=2, **overrides), handle_signals=False)
    async with running(app) as c:
        assert (await c.post("/v2/models/digits/infer", json=BODY)).status_code == 200
        served = app.state.dataplane.repository.get("digits")
        assert served.batcher is not None
        assert served.batcher.max_concurrent_batches == in_flight
