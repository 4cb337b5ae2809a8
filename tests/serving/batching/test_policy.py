"""Per-model dynamic batching: a manifest's ``batching`` over the server's settings, and the server-wide switch."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from modelpress.serving.batching.policy import batch_policy
from modelpress.serving.manifest import BatchingConfig, ManifestError, read_manifest
from tests.serving.conftest import client_for, settings_for
from tests.serving.models import FEATURES, publish_classifier

pytestmark = pytest.mark.anyio


def with_batching(version_dir: Path, batching: dict) -> None:
    """Edit a published manifest the way an operator edits Triton's config.pbtxt (the manifest is not hashed)."""
    path = version_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["batching"] = batching
    path.write_text(json.dumps(manifest))


@pytest.fixture
def own_repo(tmp_path: Path) -> Path:
    publish_classifier(tmp_path, "digits")
    publish_classifier(tmp_path, "digits-small-batches", seed=1)
    with_batching(tmp_path / "digits-small-batches" / "1", {"max_batch_size": 4, "max_queue_delay_us": 20000})
    return tmp_path


def test_a_manifest_sets_what_it_names_and_the_settings_the_rest(own_repo):
    settings = settings_for(own_repo, max_batch_size=32, max_queue_delay_us=700, max_queue_size=9)
    plain = batch_policy(read_manifest(own_repo / "digits" / "1"), settings)
    own = batch_policy(read_manifest(own_repo / "digits-small-batches" / "1"), settings)
    assert (plain.max_batch_size, plain.max_queue_delay_us, plain.max_queue_size) == (32, 700, 9)
    assert (own.max_batch_size, own.max_queue_delay_us, own.max_queue_size) == (4, 20000, 9)
    assert own.max_queue_delay_s == pytest.approx(0.02)


def test_batching_off_runs_every_request_alone_whatever_the_manifest_says(own_repo):
    manifest = read_manifest(own_repo / "digits-small-batches" / "1")
    policy = batch_policy(manifest, settings_for(own_repo, dynamic_batching=False, max_queue_size=5))
    assert (policy.max_batch_size, policy.max_queue_delay_us, policy.max_queue_size) == (1, 0, 5)


def test_a_zero_delay_in_the_manifest_is_kept_not_taken_for_unset(own_repo):
    manifest = read_manifest(own_repo / "digits" / "1").model_copy(
        update={"batching": BatchingConfig(max_queue_delay_us=0)}
    )
    assert batch_policy(manifest, settings_for(own_repo, max_queue_delay_us=900)).max_queue_delay_us == 0


def test_a_bad_batching_block_refuses_the_model_and_says_which_field(tmp_path):
    publish_classifier(tmp_path, "digits")
    with_batching(tmp_path / "digits" / "1", {"max_batch_size": 0})
    with pytest.raises(ManifestError, match="max_batch_size"):
        read_manifest(tmp_path / "digits" / "1")
    with_batching(tmp_path / "digits" / "1", {"max_batch_rows": 8})  # not a field: a typo must not pass silently
    with pytest.raises(ManifestError, match="max_batch_rows"):
        read_manifest(tmp_path / "digits" / "1")


async def test_the_server_batches_each_model_by_its_own_policy(own_repo):
    body = {"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": [0.5] * FEATURES}]}
    async with client_for(own_repo, max_batch_size=64, max_queue_delay_us=20000, wait_when_idle=True) as c:
        meta = (await c.get("/v2/models/digits-small-batches")).json()
        assert meta["parameters"]["max_batch_size"] == 4
        assert (await c.get("/v2/models/digits")).json()["parameters"]["max_batch_size"] == 64
        answers = await asyncio.gather(*(c.post("/v2/models/digits-small-batches/infer", json=body) for _ in range(10)))
        assert [a.status_code for a in answers] == [200] * 10
        text = (await c.get("/metrics")).text
    rows = _histogram(text, "modelpress_batch_size_rows", "digits-small-batches")
    assert rows["count"] >= 3  # 10 requests of one row in batches of at most 4
    assert rows["le_4"] == rows["count"]  # no batch above the model's own limit
    outputs = [np.array(a.json()["outputs"][0]["data"]) for a in answers]
    assert all(np.array_equal(o, outputs[0]) for o in outputs)


def _histogram(text: str, name: str, model: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith(name) or f'model="{model}"' not in line:
            continue
        value = float(line.rsplit(" ", 1)[1])
        if line.startswith(f"{name}_count"):
            out["count"] = value
        elif 'le="4.0"' in line:
            out["le_4"] = value
    return out
