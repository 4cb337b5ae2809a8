"""Bearer-token auth: 401 with WWW-Authenticate, open or guarded health and metrics, token files, startup refusals."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from modelpress.serving.app import create_app
from modelpress.serving.auth import AuthConfigError, TokenSource, bearer_token
from modelpress.serving.settings import Settings, SettingsError, load_settings
from tests.serving.conftest import client_for, running, settings_for
from tests.serving.models import FEATURES

pytestmark = pytest.mark.anyio

TOKEN = "s3cr3t-token-for-tests"
BODY = {"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": [0.5] * FEATURES}]}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_inference_needs_the_token(repo):
    app = create_app(settings_for(repo, auth_token=TOKEN), handle_signals=False)
    async with running(app) as c:
        r = await c.post("/v2/models/digits/infer", json=BODY)
        assert r.status_code == 401
        assert r.json()["error"].startswith("authentication required")
        assert r.headers["www-authenticate"] == 'Bearer realm="modelpress"'
        r = await c.post("/v2/models/digits/infer", json=BODY, headers=bearer("wrong"))
        assert r.status_code == 401
        assert r.json() == {"error": "invalid bearer token"}
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
        for header in ({"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer "}):
            assert (await c.post("/v2/models/digits/infer", json=BODY, headers=header)).status_code == 401
        for path in ("/v2", "/v2/models/digits", "/v1/models/digits", "/docs", "/openapi.json"):
            assert (await c.get(path)).status_code == 401, path
        assert (await c.post("/v1/models/digits:predict", json={"instances": [[1.0] * FEATURES]})).status_code == 401
        ok = await c.post("/v2/models/digits/infer", json=BODY, headers=bearer(TOKEN))
        assert ok.status_code == 200
        assert np.array(ok.json()["outputs"][0]["data"]).shape == (10,)
        ok = await c.post("/v2/models/digits/infer", json=BODY, headers={"authorization": f"bearer {TOKEN}"})
        assert ok.status_code == 200  # the scheme is case-insensitive (RFC 7235)
        # Unauthenticated requests were refused before the model: only the two accepted ones were counted.
        metrics = (await c.get("/metrics")).text
        assert 'modelpress_requests_total{model="digits",outcome="success",protocol="v2",version="1"} 2.0' in metrics
        assert "server_error" not in metrics


async def test_health_and_metrics_open_by_default_and_guarded_when_asked(repo):
    async with client_for(repo, auth_token=TOKEN) as c:
        del c.headers["Authorization"]
        for path in ("/v2/health/live", "/v2/health/ready", "/metrics"):
            assert (await c.get(path)).status_code == 200, path
    async with client_for(repo, auth_token=TOKEN, auth_health=True, auth_metrics=True) as c:
        for path in ("/v2/health/live", "/v2/health/ready", "/metrics"):
            assert (await c.get(path)).status_code == 200, path
            assert (await c.get(path, headers={"Authorization": ""})).status_code == 401, path
    async with client_for(repo, auth_token=TOKEN, auth_metrics=True) as c:
        del c.headers["Authorization"]
        assert (await c.get("/v2/health/ready")).status_code == 200
        assert (await c.get("/metrics")).status_code == 401


async def test_token_file_is_read_and_rotation_takes_effect(repo, tmp_path):
    secret = tmp_path / "token"
    secret.write_text("first-token\n")  # kubectl create secret --from-file keeps a trailing newline
    async with client_for(repo, auth_token_file=secret) as c:
        assert (await c.post("/v2/models/digits/infer", json=BODY, headers=bearer("first-token"))).status_code == 200
        secret.write_text("second-token-longer")
        os.utime(secret, ns=(secret.stat().st_atime_ns, secret.stat().st_mtime_ns + 10**9))
        assert (await c.post("/v2/models/digits/infer", json=BODY, headers=bearer("first-token"))).status_code == 401
        ok = await c.post("/v2/models/digits/infer", json=BODY, headers=bearer("second-token-longer"))
        assert ok.status_code == 200
        secret.unlink()  # a Secret being swapped: the last good token stays in force
        ok = await c.post("/v2/models/digits/infer", json=BODY, headers=bearer("second-token-longer"))
        assert ok.status_code == 200


def test_token_source_refuses_missing_or_empty(tmp_path):
    with pytest.raises(AuthConfigError, match="cannot be read"):
        TokenSource(None, tmp_path / "absent")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(AuthConfigError, match="is empty"):
        TokenSource(None, tmp_path / "empty")
    with pytest.raises(AuthConfigError, match="MODELPRESS_AUTH_TOKEN is empty"):
        TokenSource.from_settings(Settings(repository=tmp_path, auth_token=" "))
    assert TokenSource.from_settings(Settings(repository=tmp_path)) is None


def test_bearer_token_parsing():
    assert bearer_token(b"Bearer abc") == b"abc"
    assert bearer_token(b"BEARER  abc ") == b"abc"
    assert bearer_token(b"Basic abc") is None
    assert bearer_token(b"Bearer") is None
    assert bearer_token(None) is None


def test_repository_api_refused_without_auth(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match=r"repository API \(load/unload\) needs auth"):
        Settings(repository=tmp_path, repository_api=True)
    monkeypatch.setenv("MODELPRESS_REPOSITORY_API", "true")
    with pytest.raises(SettingsError, match=r"^settings: the repository API"):
        load_settings(repository=tmp_path)
    monkeypatch.setenv("MODELPRESS_AUTH_TOKEN", TOKEN)
    assert load_settings(repository=tmp_path).auth_enabled()
    with pytest.raises(SettingsError, match="not both"):
        load_settings(repository=tmp_path, auth_token_file=tmp_path / "t")


def test_cli_refuses_repository_api_without_auth_and_a_missing_token_file(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPRESS_")} | {"PYTHONPATH": str(Path.cwd())}
    cli = [sys.executable, "-m", "modelpress", "serve", "--repository", str(tmp_path)]
    r = subprocess.run([*cli, "--repository-api"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "the repository API (load/unload) needs auth" in r.stderr
    assert "Traceback" not in r.stderr
    r = subprocess.run(
        [*cli, "--auth-token-file", str(tmp_path / "absent")], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2
    assert "auth token file" in r.stderr
    assert "cannot be read" in r.stderr


async def test_repository_api_needs_the_token(repo):
    async with client_for(repo, repository_api=True, auth_token=TOKEN) as c:
        assert (await c.post("/v2/repository/index")).status_code == 200
        r = await c.post("/v2/repository/index", headers=bearer("nope"))
        assert r.status_code == 401


async def test_payloads_and_tokens_are_never_logged(repo, caplog):
    """At debug level, through success, 4xx and 401 paths, neither a payload value nor a token reaches the logs."""
    marker = "PAYLOAD-MARKER-7f3a"
    caplog.set_level(logging.DEBUG)
    async with client_for(repo, auth_token=TOKEN, log_level="debug") as c:
        bodies = [
            {**BODY, "id": marker},
            {"id": marker, "inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]},
            {"id": marker, "inputs": [{"name": marker, "shape": [1], "datatype": "BYTES", "data": [marker]}]},
        ]
        for body in bodies:
            await c.post("/v2/models/digits/infer", json=body)
        await c.post("/v2/models/digits/infer", content=f'{{"id": "{marker}", broken'.encode())
        await c.post("/v2/models/digits/infer", json=BODY, headers=bearer(marker))
        await c.post("/v1/models/digits:predict", json={"instances": [[marker]]})
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "digits" in logged  # the capture works: model loads were logged
    assert marker not in logged
    assert TOKEN not in logged


def test_workers_receive_the_real_token(tmp_path):
    from modelpress.serving.server import settings_env

    env = settings_env(Settings(repository=tmp_path, auth_token=TOKEN))
    assert env["MODELPRESS_AUTH_TOKEN"] == TOKEN


def test_real_server_answers_401(repo):
    from tests.serving.conftest import uvicorn_server

    with uvicorn_server(settings_for(repo, auth_token=TOKEN)) as url:
        r = httpx.post(f"{url}/v2/models/digits/infer", json=BODY, timeout=30)
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/json"
        assert httpx.post(f"{url}/v2/models/digits/infer", json=BODY, headers=bearer(TOKEN), timeout=30).is_success
