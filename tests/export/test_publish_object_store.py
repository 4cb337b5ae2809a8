"""Publishing to object storage from the CLI (moto's S3 server on 127.0.0.1), as a user runs it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.cli import cli, one_error_line
from tests.object_stores import new_bucket, objects
from tests.serving.conftest import running
from tests.serving.server_process import clean_env

X = np.random.default_rng(2).standard_normal((3, 64)).astype(np.float32)


@pytest.mark.slow
@pytest.mark.anyio
async def test_export_to_s3_then_serve_from_s3_answers_like_a_local_repository(checkpoint_for, s3_env, tmp_path):
    from modelpress.serving.app import create_app
    from modelpress.serving.settings import Settings

    checkpoint, _ = checkpoint_for("mlp")
    bucket = new_bucket(s3_env)
    common = ["export", str(checkpoint), "--name", "digits", "--variants", "fp32,int8", "-q"]
    proc = subprocess.run([sys.executable, "-m", "modelpress", *common, "--repository", f"s3://{bucket}/models"],
                          env=clean_env(**s3_env.env()), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"s3://{bucket}/models/digits-int8/1" in proc.stdout
    _, stderr, code = cli(*common, "--repository", str(tmp_path / "local"))
    assert code == 0, stderr
    answers = []
    for repository in (str(tmp_path / "local"), f"s3://{bucket}/models"):
        app = create_app(Settings(repository=repository, cache_dir=tmp_path / "cache", warmup_runs=1),
                         handle_signals=False)  # fmt: skip
        async with running(app) as c:
            for model in ("digits", "digits-int8"):
                v2 = await c.post(f"/v2/models/{model}/infer", json={"inputs": [
                    {"name": "input", "shape": [3, 64], "datatype": "FP32", "data": X.ravel().tolist()}]})  # fmt: skip
                v1 = await c.post(f"/v1/models/{model}:predict", json={"instances": X.tolist()})
                assert v2.status_code == v1.status_code == 200, (v2.text, v1.text)
                answers.append((repository.startswith("s3"), model, v2.json()["outputs"], v1.json()))
    local = [a[1:] for a in answers if not a[0]]
    remote = [a[1:] for a in answers if a[0]]
    assert local == remote


def test_publish_bad_input_is_one_line_exit_2_and_writes_nothing(checkpoint_for, bucket, s3_env, monkeypatch):
    checkpoint, _ = checkpoint_for("mlp")
    from tests.object_stores import put_bytes

    put_bytes(s3_env, f"{bucket}/logs/today.txt", b"hello")
    before = objects(s3_env, bucket)
    base = ["export", str(checkpoint), "--name", "digits", "--variants", "fp32", "-q", "--repository"]
    cases = {
        "ftp://host/repo": "unsupported URL scheme 'ftp://'",
        "nosuch://host/repo": "unknown URL scheme 'nosuch://'",
        f"s3://nope-{bucket}/repo": f"bucket 'nope-{bucket}' does not exist",
        f"s3://{bucket}/logs": "is not a model repository: it holds 'today.txt'",
    }
    for url, expected in cases.items():
        _, stderr, code = cli(*base, url)
        assert code == 2, (url, stderr)
        assert expected in one_error_line(stderr)
    _, stderr, code = cli(*base, f"s3://{bucket}/repo", "--storage-option", "novalue")
    assert code == 2
    assert "expected key=value" in one_error_line(stderr)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    _, stderr, code = cli(*base, f"s3://{bucket}/repo")
    assert code == 2
    assert "no credentials for s3://" in one_error_line(stderr)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert objects(s3_env, bucket) == before  # nothing written by any of them
