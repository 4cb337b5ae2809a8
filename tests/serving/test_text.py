"""Text models: BYTES in, tokenizer.json from the version folder, truncation reported, bad texts 400."""

from __future__ import annotations

import asyncio
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from tests.serving.conftest import client_for
from tests.serving.models import EMBED, encoder_reference, publish_encoder

pytestmark = pytest.mark.anyio

pytest.importorskip(
    "modelpress.serving.text", reason="serving/text.py (the tokenizer, from the transformer issue) is not present"
)
pytest.importorskip("tokenizers", reason="text models need the hf extra (tokenizers)")

LONG = "a b c d e f g h"  # 10 tokens with [CLS]/[SEP]: over the 6-token maximum


@pytest.fixture(scope="module")
def text_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("text-repo")
    publish_encoder(root)
    return root


def v2_body(texts: list[str]) -> dict:
    return {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}


async def test_v2_texts_to_embeddings_with_truncation_reported(text_repo):
    texts = ["hello world", LONG, "the cat sat"]
    async with client_for(text_repo) as c:
        meta = (await c.get("/v2/models/encoder")).json()
        assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
        r = await c.post("/v2/models/encoder/infer", json=v2_body(texts) | {"parameters": {"k": 1}})
        assert r.status_code == 200, r.text
        body = r.json()
    assert body["parameters"] == {"k": 1, "truncated": [1]}
    (out,) = body["outputs"]
    assert out["shape"] == [3, EMBED]
    got = np.array(out["data"]).reshape(3, EMBED)
    for row, text in zip(got, texts, strict=True):
        np.testing.assert_allclose(row, encoder_reference(text)[0], rtol=1e-5, atol=1e-6)


async def test_v1_instances_are_sentences(text_repo):
    async with client_for(text_repo) as c:
        r = await c.post("/v1/models/encoder:predict", json={"instances": ["hello", LONG]})
        assert r.status_code == 200, r.text
    body = r.json()
    assert body["parameters"] == {"truncated": [1]}
    np.testing.assert_allclose(body["predictions"][0], encoder_reference("hello")[0], rtol=1e-5, atol=1e-6)
    async with client_for(text_repo) as c:
        short = (await c.post("/v1/models/encoder:predict", json={"instances": ["hello"]})).json()
    assert "parameters" not in short


async def test_concurrent_texts_batched_equal_alone(text_repo):
    texts = ["hello", "hello world", LONG, "the cat", "c d e", "unknown words here"]
    async with client_for(text_repo, max_queue_delay_us=20_000) as c:
        answers = await asyncio.gather(*(c.post("/v2/models/encoder/infer", json=v2_body([t])) for t in texts))
        stats = (await c.get("/v2/models/encoder/stats")).json()["model_stats"][0]
    for text, r in zip(texts, answers, strict=True):
        assert r.status_code == 200, r.text
        want, truncated = encoder_reference(text)
        np.testing.assert_allclose(r.json()["outputs"][0]["data"], want, rtol=1e-5, atol=1e-6)
        assert ("truncated" in r.json().get("parameters", {})) is truncated
    assert stats["execution_count"] < len(texts)


@pytest.mark.parametrize(
    ("texts", "fragment"),
    [(["ok", ""], "text 1: empty text"), (["   "], "text 0: empty text")],
)
async def test_empty_texts_are_400(text_repo, texts, fragment):
    async with client_for(text_repo) as c:
        r = await c.post("/v2/models/encoder/infer", json=v2_body(texts))
        assert r.status_code == 400
        assert fragment in r.json()["error"]
        r = await c.post("/v1/models/encoder:predict", json={"instances": texts})
        assert r.status_code == 400
        assert (await c.post("/v2/models/encoder/infer", json=v2_body(["fine"]))).status_code == 200


async def test_non_utf8_bytes_are_400(text_repo):
    blob = struct.pack("<I", 2) + b"\xff\xfe"
    header = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}}]}
    head = json.dumps(header).encode()
    async with client_for(text_repo) as c:
        r = await c.post(
            "/v2/models/encoder/infer",
            content=head + blob,
            headers={"Inference-Header-Content-Length": str(len(head))},
        )
    assert r.status_code == 400
    assert "UTF-8" in r.json()["error"]
