"""Serving from object storage and live rollout (poll mode), against moto's S3 server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from modelpress.serving.app import create_app
from modelpress.serving.store import open_store
from tests.object_stores import get_bytes, moto_server, new_bucket, put_bytes
from tests.serving.conftest import running, settings_for, uvicorn_server
from tests.serving.models import FEATURES, classifier_reference, publish_classifier, publish_remote

X = np.random.default_rng(5).standard_normal((2, FEATURES)).astype(np.float32)
V2_BODY = {"inputs": [{"name": "input", "shape": [2, FEATURES], "datatype": "FP32", "data": X.ravel().tolist()}]}
V1_BODY = {"instances": X.tolist()}


def logits(response: httpx.Response) -> np.ndarray:
    out = response.json()["outputs"][0]
    return np.array(out["data"], dtype=np.float32).reshape(out["shape"])


def app_for(repository: str | Path, cache: Path, **overrides: object):
    return create_app(settings_for(repository, cache_dir=cache, **overrides), handle_signals=False)


@pytest.mark.anyio
async def test_serving_from_each_store_answers_v2_and_v1_like_a_local_folder(store, tmp_path):
    local = tmp_path / "local"
    publish_classifier(local, seed=3)
    url = store.url(new_bucket(store))
    publish_remote(open_store(url, store.options), tmp_path / "scratch", seed=3)
    answers = []
    for repository in (local, url):
        async with running(app_for(repository, tmp_path / "cache", storage_options=store.options)) as c:
            assert (await c.get("/v2/health/ready")).status_code == 200
            v2 = await c.post("/v2/models/digits/infer", json=V2_BODY)
            v1 = await c.post("/v1/models/digits:predict", json=V1_BODY)
            assert v2.status_code == v1.status_code == 200, (v2.text, v1.text)
            answers.append((v2.json(), v1.json()))
    assert answers[0] == answers[1]
    assert (tmp_path / "cache").is_dir()
    assert any((tmp_path / "cache").rglob("model.onnx"))


@pytest.mark.anyio
async def test_a_tampered_version_is_refused_counted_and_retried_while_the_old_one_serves(store, tmp_path):
    bucket = new_bucket(store)
    url = store.url(bucket)
    w1 = publish_remote(open_store(url, store.options), tmp_path / "a", seed=0)
    app = app_for(url, tmp_path / "cache", storage_options=store.options)
    async with running(app) as c:
        repository = app.state.dataplane.repository
        w2 = publish_remote(open_store(url, store.options), tmp_path / "b", seed=1)
        key = f"{bucket}/repo/digits/2/model.onnx"
        good = get_bytes(store, key)
        put_bytes(store, key, good[:-5] + bytes(b ^ 0xFF for b in good[-5:]))  # tampered after publishing
        await repository.sync()
        r = await c.post("/v2/models/digits/infer", json=V2_BODY)
        assert r.json()["model_version"] == "1"
        np.testing.assert_allclose(logits(r), classifier_reference(X, *w1), rtol=1e-5, atol=1e-5)
        metrics = (await c.get("/metrics")).text
        assert 'modelpress_version_refusals_total{model="digits",version="2"} 1.0' in metrics
        index = {(e.name, e.version): e for e in repository.index()}
        assert index[("digits", "2")].state == "UNAVAILABLE"
        assert "does not match the manifest" in index[("digits", "2")].reason
        assert not list((tmp_path / "cache").rglob("digits/2"))  # refused before it reached the cache
        put_bytes(store, key, good)  # repaired in the store
        await asyncio.sleep(1.1)  # the first retry comes after max(poll_interval, 1 s)
        await repository.sync()
        r = await c.post("/v2/models/digits/infer", json=V2_BODY)
        assert r.json()["model_version"] == "2"
        np.testing.assert_allclose(logits(r), classifier_reference(X, *w2), rtol=1e-5, atol=1e-5)
        assert (await c.get("/v2/models/digits")).json()["versions"] == ["2"]  # latest 1: v1 drained


@pytest.mark.anyio
async def test_half_written_and_removed_versions_and_the_version_policy(bucket, s3_env, tmp_path):
    url = f"s3://{bucket}/repo"
    publish_remote(url, tmp_path / "a", seed=0)
    publish_remote(url, tmp_path / "b", seed=1)
    app = app_for(url, tmp_path / "cache", version_policy="digits=latest:2")
    async with running(app) as c:
        repository = app.state.dataplane.repository
        assert (await c.get("/v2/models/digits")).json()["versions"] == ["1", "2"]
        put_bytes(s3_env, f"{bucket}/repo/digits/3/model.onnx", b"half of a publish")  # no manifest yet
        await repository.sync()
        assert (await c.get("/v2/models/digits")).json()["versions"] == ["1", "2"]
        s3_env.fs().rm(f"{bucket}/repo/digits/3", recursive=True)
        s3_env.fs().rm(f"{bucket}/repo/digits/1", recursive=True)  # removed from the store
        await repository.sync()
        assert (await c.get("/v2/models/digits")).json()["versions"] == ["2"]
        assert (await c.post("/v2/models/digits/versions/1/infer", json=V2_BODY)).status_code == 404
        assert (await c.post("/v2/models/digits/versions/2/infer", json=V2_BODY)).status_code == 200
        for _ in range(100):  # the retired version's download leaves the cache once drained (bounded: 5 s)
            if not list((tmp_path / "cache").rglob("digits/1")):
                break
            await asyncio.sleep(0.05)
        assert not list((tmp_path / "cache").rglob("digits/1"))
        assert list((tmp_path / "cache").rglob("digits/2/model.onnx"))


@pytest.mark.slow  # the S3 client's own connect retries: ~10 s
@pytest.mark.anyio
async def test_a_store_unreachable_during_a_poll_keeps_everything_serving(tmp_path, monkeypatch):
    with moto_server() as s3:
        for key, value in s3.env().items():
            monkeypatch.setenv(key, value)
        bucket = new_bucket(s3)
        url = f"s3://{bucket}/repo"
        publish_remote(url, tmp_path / "a")
        app = app_for(url, tmp_path / "cache")
        async with running(app) as c:
            repository = app.state.dataplane.repository
            s3.stop()
            started = time.monotonic()
            await repository.sync()
            assert time.monotonic() - started < 30  # bounded: the store's timeouts, not a hang
            assert (await c.post("/v2/models/digits/infer", json=V2_BODY)).status_code == 200
            assert (await c.get("/v2/health/ready")).status_code == 200
            metrics = (await c.get("/metrics")).text
            assert 'modelpress_repository_polls_total{outcome="error"} 1.0' in metrics
            assert 'modelpress_repository_polls_total{outcome="ok"} 1.0' in metrics  # the startup scan


@pytest.mark.slow
def test_a_new_version_rolls_in_under_load_within_two_polls_with_zero_failed_requests(bucket, tmp_path):
    url, interval = f"s3://{bucket}/repo", 1.0
    publish_remote(url, tmp_path / "a", seed=0)
    settings = settings_for(url, cache_dir=tmp_path / "cache", poll_interval=interval)
    with uvicorn_server(settings) as base:
        answers: list[tuple[float, int, str]] = []
        stop = threading.Event()

        def client_loop() -> None:
            with httpx.Client(base_url=base, timeout=10) as client:
                for _ in range(5000):  # bounded even if the rollout never came
                    if stop.is_set():
                        return
                    r = client.post("/v2/models/digits/infer", json=V2_BODY)
                    version = r.json().get("model_version", "") if r.status_code == 200 else ""
                    answers.append((time.monotonic(), r.status_code, version))

        loops = [threading.Thread(target=client_loop) for _ in range(3)]
        for loop in loops:
            loop.start()
        try:
            deadline = time.monotonic() + 10
            while len(answers) < 20 and time.monotonic() < deadline:
                time.sleep(0.01)
            publish_remote(url, tmp_path / "b", seed=1)
            published = time.monotonic()
            while time.monotonic() < published + 4 * interval:
                if any(v == "2" for _, _, v in answers[-5:]):
                    break
                time.sleep(0.02)
            time.sleep(0.3)  # a few more answers from the new version
        finally:
            stop.set()
            for loop in loops:
                loop.join(timeout=30)
    codes = [code for _, code, _ in answers]
    assert codes.count(200) == len(codes), f"{len(codes) - codes.count(200)} failed of {len(codes)}"
    first_v2 = min(t for t, _, v in answers if v == "2")
    assert first_v2 - published <= 2 * interval, f"v2 first served {first_v2 - published:.2f} s after publishing"
    assert answers[0][2] == "1"
    assert answers[-1][2] == "2"


@pytest.mark.anyio
async def test_a_local_folder_is_polled_the_same_way(tmp_path):
    repository, interval = tmp_path / "repo", 0.2
    publish_remote(str(repository), tmp_path / "a", seed=0)  # the real (rename-based) publisher
    app = create_app(settings_for(repository, poll_interval=interval), handle_signals=False)
    async with running(app) as c:
        assert (await c.post("/v2/models/digits/infer", json=V2_BODY)).json()["model_version"] == "1"
        publish_remote(str(repository), tmp_path / "b", seed=1)
        published, version = time.monotonic(), "1"
        while version == "1" and time.monotonic() - published < 10:
            await asyncio.sleep(0.02)
            version = (await c.post("/v2/models/digits/infer", json=V2_BODY)).json()["model_version"]
        assert version == "2"
        assert time.monotonic() - published < 2 * interval + 1.0  # two polls, plus a load and warm-up on a busy box


@pytest.mark.anyio
async def test_a_manifest_can_carry_the_version_policy_and_settings_override_it(tmp_path):
    from modelpress.serving.manifest import read_manifest, write_manifest

    for version in (1, 2, 3):
        publish_classifier(tmp_path, version=version, seed=version)
    folder = tmp_path / "digits" / "3"
    write_manifest(read_manifest(folder).model_copy(update={"version_policy": "latest:2"}), folder)
    async with running(app_for(tmp_path, tmp_path / "cache")) as c:
        assert (await c.get("/v2/models/digits")).json()["versions"] == ["2", "3"]  # what v3's manifest asks
    async with running(app_for(tmp_path, tmp_path / "cache", version_policy="digits=latest:1")) as c:
        assert (await c.get("/v2/models/digits")).json()["versions"] == ["3"]  # the server's setting wins
