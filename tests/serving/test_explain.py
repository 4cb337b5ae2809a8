"""KServe V1 :explain: occlusion attributions checked against models whose answer is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelpress.serving.explain import feature_groups, word_spans
from modelpress.serving.manifest import TensorSpec
from tests.serving.conftest import client_for
from tests.serving.models import CLASSES, FEATURES, LABELS, publish, publish_encoder, publish_multi

READ = 8  # the partial classifier reads the first 8 of its 64 features and nothing else

pytestmark = pytest.mark.anyio


def partial_classifier_graph() -> helper.GraphProto:
    """``logits = x[:, :8] @ W``: features 8..63 cannot change the output."""
    w = np.random.default_rng(3).standard_normal((READ, CLASSES)).astype(np.float32) * 3
    nodes = [
        helper.make_node("Slice", ["input", "starts", "ends", "axes"], ["head"]),
        helper.make_node("MatMul", ["head", "W"], ["logits"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([0], dtype=np.int64), "starts"),
        numpy_helper.from_array(np.array([READ], dtype=np.int64), "ends"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
        numpy_helper.from_array(w, "W"),
    ]
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", FEATURES])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", CLASSES])
    return helper.make_graph(nodes, "partial", [x], [y], initializer=inits)


@pytest.fixture(scope="module")
def explain_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("explain-repo")
    publish(
        root, "partial", 1, partial_classifier_graph(), task="classification", labels=LABELS,
        inputs=[TensorSpec(name="input", datatype="FP32", shape=[-1, FEATURES])],
        outputs=[TensorSpec(name="logits", datatype="FP32", shape=[-1, CLASSES])],
        feature_names=[f"f{i}" for i in range(FEATURES)],
    )  # fmt: skip
    publish_encoder(root)
    publish_multi(root)
    return root


def _instance(seed: int = 0) -> list[float]:
    return np.random.default_rng(seed).uniform(0, 16, FEATURES).round(1).tolist()


async def test_features_the_model_never_reads_get_exactly_zero(explain_repo: Path) -> None:
    async with client_for(explain_repo) as client:
        r = await client.post("/v1/models/partial:explain", json={"instances": [_instance(0), _instance(1)]})
    assert r.status_code == 200, r.text
    explanations = r.json()["explanations"]
    assert len(explanations) == 2
    for e in explanations:
        attributions = np.asarray(e["attributions"])
        assert attributions.shape == (FEATURES,)
        assert np.all(attributions[READ:] == 0.0)
        assert np.abs(attributions[:READ]).max() > 1e-4  # the features it reads do move the prediction
        assert e["method"] == "occlusion"
        assert e["baseline"] == "zero"
        assert e["target"] in LABELS
        assert e["model_rows"] == FEATURES + 1
        assert e["group_size"] == 1
        assert e["feature_names"][:2] == ["f0", "f1"]


async def test_attribution_is_the_probability_drop_when_the_feature_is_occluded(explain_repo: Path) -> None:
    instance = _instance(2)
    async with client_for(explain_repo) as client:
        explained = (await client.post("/v1/models/partial:explain", json={"instances": [instance]})).json()
        e = explained["explanations"][0]
        occluded = list(instance)
        occluded[3] = 0.0
        predicted = await client.post("/v1/models/partial:predict", json={"instances": [instance, occluded]})
        before, after = predicted.json()["predictions"]
    assert e["target"] == before["label"]
    expected = before["probabilities"][e["target"]] - after["probabilities"][e["target"]]
    assert e["attributions"][3] == pytest.approx(expected, abs=1e-6)


async def test_attributions_are_shaped_like_the_instance_and_the_budget_groups_features(explain_repo: Path) -> None:
    image = np.asarray(_instance(4)).reshape(8, 8).tolist()
    async with client_for(explain_repo, explain_max_evaluations=17) as client:
        r = await client.post("/v1/models/partial:explain", json={"instances": [image]})
    e = r.json()["explanations"][0]
    assert np.asarray(e["attributions"]).shape == (8, 8)
    assert e["group_size"] == 4
    assert e["model_rows"] == 17
    assert np.all(np.asarray(e["attributions"])[2:] == 0.0)  # rows 2..7 of the image are features 16..63


async def test_text_explanation_lists_tokens_and_how_far_each_moved_the_embedding(explain_repo: Path) -> None:
    async with client_for(explain_repo) as client:
        r = await client.post("/v1/models/encoder:explain", json={"instances": ["hello world, the cat", "cat"]})
    assert r.status_code == 200, r.text
    first, single = r.json()["explanations"]
    assert first["tokens"] == ["hello", "world", ",", "the", "cat"]
    values = first["attributions"]
    assert len(values) == 5
    assert all(v is not None and v >= -1e-9 for v in values)
    assert max(values) > 1e-3
    assert single["tokens"] == ["cat"]
    assert single["attributions"] == [None]


async def test_explain_refuses_what_it_cannot_explain_with_a_message(explain_repo: Path) -> None:
    async with client_for(explain_repo, explain_max_evaluations=4) as client:
        unsupported = await client.post("/v1/models/multi:explain", json={"instances": [{}]})
        too_many = await client.post("/v1/models/partial:explain", json={"instances": [_instance()] * 3})
        short = await client.post("/v1/models/partial:explain", json={"instances": [[1.0, 2.0]]})
        empty_text = await client.post("/v1/models/encoder:explain", json={"instances": ["  "]})
        unknown = await client.post("/v1/models/nope:explain", json={"instances": [[1.0]]})
        metrics = (await client.get("/metrics")).text
    assert unsupported.status_code == 400
    assert "supports classifiers" in unsupported.json()["error"]
    assert too_many.status_code == 400
    assert "send at most 2 instances" in too_many.json()["error"]
    assert short.status_code == 400
    assert "[-1, 64]" in short.json()["error"]
    assert empty_text.status_code == 400
    assert "empty text" in empty_text.json()["error"]
    assert unknown.status_code == 404
    refused = 'modelpress_requests_total{model="partial",outcome="client_error",protocol="explain",version="1"} 2.0'
    assert refused in metrics


def test_feature_groups_cover_every_feature_once_within_the_budget() -> None:
    for count in (1, 7, 64, 65, 300):
        for budget in (1, 3, 16, 64, 255):
            groups = feature_groups(count, budget)
            assert len(groups) <= budget
            assert [i for g in groups for i in g] == list(range(count))


def test_word_spans_split_words_and_punctuation() -> None:
    assert [w for w, _, _ in word_spans("Don't stop, now!")] == ["Don't", "stop", ",", "now", "!"]
