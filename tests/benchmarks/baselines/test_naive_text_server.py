import numpy as np
from fastapi.testclient import TestClient

from modelpress.benchmarks.baselines.naive_text_server import create_app


def test_one_forward_per_request_gives_unit_embeddings(tiny_bert):
    client = TestClient(create_app(str(tiny_bert), threads=1))
    assert client.get("/v2/health/ready").json() == {"ready": True}
    body = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["a short one", "and another"]}]}
    answer = client.post("/v2/models/minilm/infer", json=body).json()
    output = answer["outputs"][0]
    assert answer["model_name"] == "minilm"
    assert output["name"] == "embedding"
    assert output["shape"][0] == 2
    vectors = np.asarray(output["data"], np.float32).reshape(output["shape"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])


def test_bad_body_is_a_422_not_a_crash(tiny_bert):
    client = TestClient(create_app(str(tiny_bert), threads=1))
    assert client.post("/v2/models/minilm/infer", json={"inputs": "nope"}).status_code == 422
