"""OpenAI-compatible /v1/embeddings and /v1/models: in process, and with the official openai client on uvicorn."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from modelpress.serving.manifest import EmbeddingSpec, TensorSpec, TokenizerSpec
from tests.serving.conftest import client_for, settings_for, uvicorn_server
from tests.serving.models import (
    EMBED,
    MAX_TOKENS,
    encoder_graph,
    encoder_reference,
    publish,
    publish_classifier,
    publish_encoder,
    tokenizer_json,
)

pytestmark = pytest.mark.anyio
pytest.importorskip("tokenizers", reason="text models need the hf extra (tokenizers)")

TOKEN = "sk-test-token"


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("openai-repo")
    publish_encoder(root)
    publish_classifier(root)
    publish(  # the same encoder, declared as trained to be cut to 2 dimensions (Matryoshka)
        root, "matryoshka", 1, encoder_graph(), extra_files={"tokenizer.json": tokenizer_json()},
        task="embedding", tokenizer=TokenizerSpec(file="tokenizer.json", max_length=MAX_TOKENS),
        inputs=[TensorSpec(name="text", datatype="BYTES", shape=[-1])],
        outputs=[TensorSpec(name="embedding", datatype="FP32", shape=[-1, EMBED])],
        embedding=EmbeddingSpec(truncatable_dimensions=[2]),
    )  # fmt: skip
    return root


def tokens_of(text: str) -> int:
    return len(text.split()) + 2  # [CLS] ... [SEP]


async def test_embeddings_float_and_base64_match_the_reference_with_usage(repo):
    texts = ["hello world", "the cat", "a b c"]
    async with client_for(repo) as c:
        floats = await c.post("/v1/embeddings", json={"model": "encoder", "input": texts})
        b64 = await c.post("/v1/embeddings", json={"model": "encoder", "input": texts, "encoding_format": "base64"})
        single = await c.post("/v1/embeddings", json={"model": "encoder", "input": "hello world"})
        metrics = (await c.get("/metrics")).text
    assert 'modelpress_requests_total{model="encoder",outcome="success",protocol="openai",version="1"} 3.0' in metrics
    assert floats.status_code == 200, floats.text
    body = floats.json()
    assert body["object"] == "list"
    assert body["model"] == "encoder"
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    assert {d["object"] for d in body["data"]} == {"embedding"}
    expected_tokens = sum(tokens_of(t) for t in texts)
    assert body["usage"] == {"prompt_tokens": expected_tokens, "total_tokens": expected_tokens}
    for text, item, coded in zip(texts, body["data"], b64.json()["data"], strict=True):
        reference, _ = encoder_reference(text)
        np.testing.assert_allclose(item["embedding"], reference, rtol=1e-5, atol=1e-6)
        decoded = np.frombuffer(base64.b64decode(coded["embedding"]), dtype="<f4")
        np.testing.assert_array_equal(decoded, np.asarray(item["embedding"], dtype=np.float32))
    assert len(single.json()["data"]) == 1
    assert single.json()["usage"]["prompt_tokens"] == tokens_of("hello world")


async def test_dimensions_only_where_the_manifest_allows_it(repo):
    async with client_for(repo) as c:
        cut = await c.post("/v1/embeddings", json={"model": "matryoshka", "input": "hello world", "dimensions": 2})
        full = await c.post("/v1/embeddings", json={"model": "encoder", "input": "hello world", "dimensions": EMBED})
        refused = await c.post("/v1/embeddings", json={"model": "encoder", "input": "hello world", "dimensions": 2})
        odd = await c.post("/v1/embeddings", json={"model": "matryoshka", "input": "hello world", "dimensions": 3})
    reference, _ = encoder_reference("hello world")
    vector = np.asarray(cut.json()["data"][0]["embedding"])
    np.testing.assert_allclose(vector, reference[:2] / np.linalg.norm(reference[:2]), rtol=1e-5)
    assert len(full.json()["data"][0]["embedding"]) == EMBED
    for response in (refused, odd):
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["param"] == "dimensions"
        assert error["type"] == "invalid_request_error"
    assert "only its full size 4" in refused.json()["error"]["message"]
    assert "[2] or its full size 4" in odd.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "param", "words"),
    [
        ({"model": "digits", "input": "hello"}, 400, "model", "not a text embedding model"),
        ({"model": "nope", "input": "hello"}, 404, "model", "nope"),
        ({"model": "encoder", "input": []}, 400, "input", "empty"),
        ({"model": "encoder", "input": "a b c d e f g h"}, 400, "input", "10 tokens long"),
        ({"model": "encoder", "input": [[1, 2, 3]]}, 400, "input", "token ids"),
        ({"model": "encoder", "input": ["hello", ""]}, 400, None, "text 1: empty"),
        ({"model": "encoder", "input": ["a"] * 5}, 413, None, "max_batch_rows"),
        ({"model": "encoder", "input": "x", "encoding_format": "int8"}, 400, None, "encoding_format"),
        ({"input": "x"}, 400, None, "model"),
    ],
)
async def test_bad_requests_answer_openai_errors(repo, body, status, param, words):
    async with client_for(repo, max_batch_rows=4) as c:
        response = await c.post("/v1/embeddings", json=body)
        after = await c.post("/v1/embeddings", json={"model": "encoder", "input": "hello"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert words in error["message"]
    if param is not None:
        assert error["param"] == param
    assert after.status_code == 200  # and the server keeps serving


async def test_malformed_json_and_wrong_content_type(repo):
    async with client_for(repo) as c:
        broken = await c.post("/v1/embeddings", content=b"{", headers={"content-type": "application/json"})
        text = await c.post("/v1/embeddings", content=b"hello", headers={"content-type": "text/plain"})
    assert broken.status_code == 400
    assert "malformed JSON" in broken.json()["error"]["message"]
    assert text.status_code == 415
    assert text.json()["error"]["type"] == "invalid_request_error"


async def test_models_list_and_retrieve_speak_both_openai_and_kserve_v1(repo):
    async with client_for(repo) as c:
        listed = (await c.get("/v1/models")).json()
        one = (await c.get("/v1/models/encoder")).json()
    assert listed["object"] == "list"
    assert listed["models"] == ["digits", "encoder", "matryoshka"]
    cards = {d["id"]: d for d in listed["data"]}
    assert cards["encoder"]["embeddings"] is True
    assert cards["digits"]["embeddings"] is False
    assert one["id"] == one["name"] == "encoder"
    assert one["ready"] is True
    assert one["object"] == "model"


def test_official_openai_client_against_uvicorn(repo):
    openai = pytest.importorskip("openai")
    settings = settings_for(repo, auth_token=TOKEN)
    with uvicorn_server(settings) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0, timeout=30)
        texts = ["hello world", "the cat"]
        result = client.embeddings.create(model="encoder", input=texts)  # the client asks for base64 by default
        as_floats = client.embeddings.create(model="encoder", input=texts, encoding_format="float")
        models = [m.id for m in client.models.list()]
        retrieved = client.models.retrieve("encoder")
        with pytest.raises(openai.BadRequestError) as not_text:
            client.embeddings.create(model="digits", input="hello")
        with pytest.raises(openai.NotFoundError):
            client.embeddings.create(model="text-embedding-3-small", input="hello")
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).embeddings.create(
                model="encoder", input="hello"
            )
    for text, item, plain in zip(texts, result.data, as_floats.data, strict=True):
        np.testing.assert_allclose(item.embedding, encoder_reference(text)[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(plain.embedding, item.embedding, rtol=1e-6)
    assert result.usage.prompt_tokens == sum(tokens_of(t) for t in texts)
    assert models == ["digits", "encoder", "matryoshka"]
    assert retrieved.id == "encoder"
    assert not_text.value.body["param"] == "model"


async def test_fast_path_answers_embeddings_as_fastapi_does(repo):
    from tests.serving.rest.test_fast import answers, both

    json_headers = {"content-type": "application/json"}
    requests = [
        ("POST", "/v1/embeddings", b'{"model": "encoder", "input": ["hello world", "the cat"]}', json_headers),
        ("POST", "/v1/embeddings", b'{"model": "encoder", "input": "a", "encoding_format": "base64"}', json_headers),
        ("POST", "/v1/embeddings", b'{"model": "digits", "input": "a"}', json_headers),
        ("POST", "/v1/embeddings", b'{"model": "nope", "input": "a"}', json_headers),
        ("POST", "/v1/embeddings", b"{", json_headers),
        ("POST", "/v1/embeddings", b"x", {"content-type": "text/plain"}),
    ]
    async with both(repo) as (quick, framework):
        got, want = await answers(quick, requests), await answers(framework, requests)
        assert [a[2] for a in got] == [200, 200, 400, 404, 400, 415]
        assert got == want
        for client in (quick, framework):  # only the fast path answers once FastAPI's routes are gone
            router = client._transport.app.router
            router.routes = [r for r in router.routes if getattr(r, "path", None) == "/openapi.json"]
        assert [a[2] for a in await answers(quick, requests[:1])] == [200]
        assert [a[2] for a in await answers(framework, requests[:1])] == [404]
