"""The CLI with a repository in object storage (moto's S3 server on 127.0.0.1), as a user runs it."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from modelpress.benchmarks.processes import free_port
from tests.cli import one_error_line
from tests.object_stores import AZURITE_KEY, moto_server, new_bucket
from tests.serving.server_process import clean_env

X = np.random.default_rng(2).standard_normal((3, 64)).astype(np.float32)


def test_serve_refuses_a_bad_repository_url_in_one_line(tmp_path, store):
    bucket = f"nope-{new_bucket(store)}"
    for url, expected in {
        "gopher://x/y": "unknown URL scheme 'gopher://'",
        store.url(bucket): f"bucket '{bucket}' does not exist ({store.url(bucket)})",
    }.items():
        proc = subprocess.run([sys.executable, "-m", "modelpress", "serve", "--repository", url, *store.cli_options()],
                              env=clean_env(**store.env()), capture_output=True, text=True, timeout=120)  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert expected in one_error_line(proc.stderr)


@pytest.mark.slow
def test_serve_with_the_store_unreachable_fails_fast_or_waits_for_it(tmp_path, monkeypatch):
    from tests.object_stores import CREDENTIALS
    from tests.serving.models import publish_remote

    # The store's port stays bound (not listening: connections are refused) until the store starts there, so no
    # other server of the test run can take it meanwhile.
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    env = {**CREDENTIALS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}  # nothing listens there yet
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    url = "s3://models/repo"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "modelpress", "serve", "--repository", url],
                          env=clean_env(**env), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "cannot reach the store of s3://models/repo" in one_error_line(proc.stderr)
    assert time.monotonic() - started < 60
    # With --wait-for-repository the server retries with backoff and starts once the store is up.
    http = f"http://127.0.0.1:{free_port()}"
    log = tmp_path / "serve.log"
    with log.open("w") as sink:
        waiting = subprocess.Popen(
            [sys.executable, "-m", "modelpress", "serve", "--repository", url, "--port", http.rsplit(":", 1)[1],
             "--wait-for-repository", "60", "--cache-dir", str(tmp_path / "cache"), "--poll-interval", "1"],
            env=clean_env(**env), stdout=subprocess.DEVNULL, stderr=sink, text=True,
        )  # fmt: skip
    ready = False
    try:
        # The store comes up only once the server has seen it missing (a loaded machine starts Python slowly). The
        # server may then find the new bucket before the version lands in it: polling picks the version up.
        deadline = time.monotonic() + 60
        while "attempt 1" not in log.read_text() and waiting.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert waiting.poll() is None, log.read_text()  # still retrying
        holder.close()
        with moto_server(port) as s3:
            s3.fs().mkdir("models")
            publish_remote(url, tmp_path / "scratch")
            deadline = time.monotonic() + 90
            while not ready and waiting.poll() is None and time.monotonic() < deadline:
                time.sleep(0.3)
                try:
                    ready = httpx.get(f"{http}/v2/health/ready", timeout=2).status_code == 200
                except httpx.HTTPError:
                    continue
    finally:
        waiting.kill()
        waiting.wait()
    stderr = log.read_text()
    assert ready, stderr
    # Attempt 1 saw no store (or, on a slow machine, the store before its bucket existed): retried either way.
    assert re.search(r"repository not readable \(attempt 1, retrying in 1 s\): (cannot reach|bucket)", stderr)
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in stderr  # no credential in the log


def test_serve_takes_the_endpoint_as_a_storage_option_and_logs_no_secret(s3_env, bucket, tmp_path):
    from tests.object_stores import CREDENTIALS
    from tests.serving.models import publish_remote
    from tests.serving.server_process import server_process

    publish_remote(f"s3://{bucket}/repo", tmp_path / "scratch")
    command = [sys.executable, "-m", "modelpress", "serve", "--storage-option", f"endpoint_url={s3_env.endpoint}",
               "--cache-dir", str(tmp_path / "cache"), "--log-level", "debug"]  # fmt: skip
    with server_process(command, f"s3://{bucket}/repo", **CREDENTIALS) as server:  # no AWS_ENDPOINT_URL
        r = httpx.post(f"{server.url}/v2/models/digits/infer", json={"inputs": [
            {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]}, timeout=10)  # fmt: skip
        assert r.status_code == 200, r.text
        server.proc.terminate()
        server.proc.wait(timeout=30)
    assert "serving digits v1" in server.stderr
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in server.stderr


@pytest.mark.parametrize("store", ["gs", "az"], indirect=True)
def test_serve_from_gcs_and_azure_answers_and_logs_no_secret(store, tmp_path):
    from modelpress.serving.store import open_store
    from tests.serving.models import FEATURES, classifier_reference, publish_remote
    from tests.serving.server_process import server_process

    url = store.url(new_bucket(store))
    weights = publish_remote(open_store(url, store.options), tmp_path / "scratch")
    env, options = store.env(), store.cli_options()
    if store.scheme == "az":  # the account key on the command line, where a careless log would show it first
        options += ["--storage-option", f"connection_string={env.pop('AZURE_STORAGE_CONNECTION_STRING')}"]
    command = [sys.executable, "-m", "modelpress", "serve", *options, "--cache-dir", str(tmp_path / "cache"),
               "--log-level", "debug"]  # fmt: skip
    x = np.random.default_rng(4).standard_normal((2, FEATURES)).astype(np.float32)
    with server_process(command, url, **env) as server:
        body = {"inputs": [{"name": "input", "shape": [2, FEATURES], "datatype": "FP32", "data": x.ravel().tolist()}]}
        r = httpx.post(f"{server.url}/v2/models/digits/infer", json=body, timeout=10)
        assert r.status_code == 200, r.text
        out = r.json()["outputs"][0]
        np.testing.assert_allclose(np.array(out["data"], dtype=np.float32).reshape(out["shape"]),
                                   classifier_reference(x, *weights), rtol=1e-5, atol=1e-5)  # fmt: skip
        server.proc.terminate()
        server.proc.wait(timeout=30)
    assert "serving digits v1" in server.stderr
    assert AZURITE_KEY not in server.stderr
    assert AZURITE_KEY[:20] not in server.stderr  # nor a piece of it
