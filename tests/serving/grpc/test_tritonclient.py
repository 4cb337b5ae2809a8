"""tritonclient.grpc, unchanged, against the gRPC server: the same outputs as REST for every served model."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from tests.serving.models import CLASSES, FEATURES, LABELS, classifier_reference

pytestmark = pytest.mark.slow  # a real server with gRPC per module: a few seconds


def _inputs(model: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    if model == "digits":
        return {"input": rng.standard_normal((3, FEATURES)).astype(np.float32)}
    if model == "encoder":
        return {"text": np.array([b"hello world", b"the cat", "h\xe9llo".encode()], dtype=object)}
    return {
        "ids": rng.integers(-(2**40), 2**40, (2, 4)).astype(np.int64),
        "mask": rng.integers(0, 2, (2, 4)).astype(bool),
        "x": rng.standard_normal((2, 3)),
        "h": rng.standard_normal((2, 2)).astype(np.float16),
        "u8": rng.integers(0, 256, (2, 2)).astype(np.uint8),
        "text": np.array([[b"a b"], ["\u00e9t\u00e9".encode()]], dtype=object),
    }


def _infer(module, client, model: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    inputs = []
    for name, arr in arrays.items():
        tensor = module.InferInput(name, list(arr.shape), np_to_triton_dtype(arr.dtype))
        tensor.set_data_from_numpy(arr)
        inputs.append(tensor)
    result = client.infer(model, inputs, request_id="req-7")
    outputs = result.get_response()
    names = [o.name for o in outputs.outputs] if module is grpcclient else [o["name"] for o in outputs["outputs"]]
    return {n: result.as_numpy(n) for n in names}


@pytest.mark.parametrize("model", ["digits", "multi", "encoder"])
def test_grpc_and_rest_give_the_same_outputs(served, digits_weights, model):
    arrays = _inputs(model)
    g = grpcclient.InferenceServerClient(served.grpc)
    h = httpclient.InferenceServerClient(served.url)
    got, want = _infer(grpcclient, g, model, arrays), _infer(httpclient, h, model, arrays)
    assert got.keys() == want.keys()
    assert got
    for name in got:
        assert got[name].dtype == want[name].dtype, name
        assert got[name].shape == want[name].shape, name
        assert np.array_equal(got[name], want[name]), name
    if model == "digits":
        w, b = digits_weights
        np.testing.assert_allclose(got["logits"], classifier_reference(arrays["input"], w, b), rtol=1e-5, atol=1e-5)
    if model == "multi":
        assert np.array_equal(got["sum_ids"], arrays["ids"].sum(axis=1, keepdims=True))
        assert np.array_equal(got["text_out"], arrays["text"])


def test_health_metadata_statistics_and_request_id(served):
    c = grpcclient.InferenceServerClient(served.grpc)
    assert c.is_server_live()
    assert c.is_server_ready()
    assert c.is_model_ready("digits")
    assert c.is_model_ready("digits", "1")
    meta = c.get_server_metadata()
    assert meta.name == "modelpress"
    assert "binary_tensor_data" in meta.extensions
    model = c.get_model_metadata("digits")
    assert (model.name, list(model.versions), model.platform) == ("digits", ["1"], "onnx_onnxv1")
    assert [(t.name, t.datatype, list(t.shape)) for t in model.inputs] == [("input", "FP32", [-1, FEATURES])]
    assert [(t.name, t.datatype, list(t.shape)) for t in model.outputs] == [("logits", "FP32", [-1, CLASSES])]
    before = c.get_inference_statistics("digits").model_stats[0].inference_stats.success.count
    tensor = grpcclient.InferInput("input", [1, FEATURES], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, FEATURES), np.float32))
    result = c.infer("digits", [tensor], request_id="abc-1", outputs=[grpcclient.InferRequestedOutput("logits")])
    response = result.get_response()
    assert (response.id, response.model_name, response.model_version) == ("abc-1", "digits", "1")
    stats = c.get_inference_statistics("digits").model_stats[0]
    assert stats.inference_stats.success.count == before + 1
    assert stats.inference_stats.success.ns > 0
    assert stats.inference_count >= 1
    everything = c.get_inference_statistics()
    assert {s.name for s in everything.model_stats} == {"digits", "multi", "encoder"}


def test_grpc_requests_are_counted_with_protocol_grpc(served):
    import httpx

    c = grpcclient.InferenceServerClient(served.grpc)
    tensor = grpcclient.InferInput("input", [2, FEATURES], "FP32")
    tensor.set_data_from_numpy(np.ones((2, FEATURES), np.float32))

    def grpc_counts() -> tuple[float, float]:
        text = httpx.get(f"http://{served.url}/metrics").text
        req = 'modelpress_requests_total{model="digits",outcome="success",protocol="grpc",version="1"}'
        bad = 'modelpress_requests_total{model="digits",outcome="client_error",protocol="grpc",version="1"}'
        found = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if "{" in line}
        return found.get(req, 0.0), found.get(bad, 0.0)

    ok0, bad0 = grpc_counts()
    c.infer("digits", [tensor])
    c.infer("digits", [tensor])
    wrong = grpcclient.InferInput("input", [1, 3], "FP32")
    wrong.set_data_from_numpy(np.ones((1, 3), np.float32))
    with pytest.raises(InferenceServerException):
        c.infer("digits", [wrong])
    assert grpc_counts() == (ok0 + 2, bad0 + 1)


def _config_essentials(config: dict) -> dict:
    """What Triton's tools read from a model configuration, in one spelling (gRPC's JSON gives int64 as text)."""

    def tensors(items: list[dict]) -> list[tuple]:
        return [(t["name"], t["data_type"], [int(d) for d in t.get("dims", [])]) for t in items]

    group = config["instance_group"][0]
    return {
        "name": config["name"],
        "platform": config["platform"],
        "backend": config["backend"],
        "max_batch_size": config.get("max_batch_size", 0),
        "input": tensors(config["input"]),
        "output": tensors(config["output"]),
        "batching_delay_us": int(config.get("dynamic_batching", {}).get("max_queue_delay_microseconds", -1)),
        "instances": (group["kind"], group["count"]),
    }


def test_model_config_speaks_tritons_convention_over_both_protocols(served):
    """Triton's model configuration extension, as perf_analyzer and get_model_config read it: dims without the
    batch dimension when max_batch_size > 0, Triton's type names, the batcher's delay and batches in flight."""
    g = grpcclient.InferenceServerClient(served.grpc)
    h = httpclient.InferenceServerClient(served.url)
    for model in ("digits", "multi", "encoder"):
        over_rest = _config_essentials(h.get_model_config(model))
        assert over_rest == _config_essentials(g.get_model_config(model, as_json=True)["config"]), model
        assert over_rest == _config_essentials(h.get_model_config(model, "1")), model
    digits = _config_essentials(h.get_model_config("digits"))
    assert (digits["platform"], digits["backend"]) == ("onnxruntime_onnx", "onnxruntime")
    assert digits["max_batch_size"] > 1
    assert digits["input"] == [("input", "TYPE_FP32", [FEATURES])]
    assert digits["output"] == [("logits", "TYPE_FP32", [CLASSES])]
    assert digits["batching_delay_us"] >= 0
    assert digits["instances"][0] == "KIND_CPU"
    assert digits["instances"][1] >= 1
    encoder = _config_essentials(h.get_model_config("encoder"))
    assert encoder["input"][0][1] == "TYPE_STRING"
    multi = h.get_model_metadata("multi")
    batched = _config_essentials(h.get_model_config("multi"))["max_batch_size"] > 0
    for tensor, (name, _, dims) in zip(multi["inputs"], _config_essentials(h.get_model_config("multi"))["input"],
                                       strict=True):  # fmt: skip
        assert name == tensor["name"]
        assert dims == (tensor["shape"][1:] if batched else tensor["shape"])


def test_model_config_of_an_unknown_model_is_not_found(served):
    with pytest.raises(InferenceServerException, match="not served") as rest:
        httpclient.InferenceServerClient(served.url).get_model_config("nope")
    assert rest.value.status() == "404"
    with pytest.raises(InferenceServerException, match="not served") as grpc_error:
        grpcclient.InferenceServerClient(served.grpc).get_model_config("nope")
    assert grpc_error.value.status() == "StatusCode.NOT_FOUND"


def test_statistics_give_the_three_compute_counts_alike(served):
    """perf_analyzer refuses server statistics whose compute_input, compute_infer and compute_output counts
    differ; feeding and reading the run are timed inside compute_infer."""
    c = grpcclient.InferenceServerClient(served.grpc)
    tensor = grpcclient.InferInput("input", [1, FEATURES], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, FEATURES), np.float32))
    c.infer("digits", [tensor])
    s = c.get_inference_statistics("digits").model_stats[0].inference_stats
    assert s.compute_infer.count >= 1
    assert s.compute_input.count == s.compute_infer.count == s.compute_output.count


@pytest.mark.parametrize("module", [grpcclient, httpclient], ids=["grpc", "http"])
def test_class_count_returns_the_top_classes_as_triton_does(served, digits_weights, module):
    """tritonclient's ``class_count`` (Triton's classification extension): the top k of each row as
    ``value:index:label``, from the same logits the raw output gives; over gRPC and REST alike."""
    client = module.InferenceServerClient(served.grpc if module is grpcclient else served.url)
    assert "classification" in (client.get_server_metadata().extensions if module is grpcclient
                                else client.get_server_metadata()["extensions"])  # fmt: skip
    x = np.random.default_rng(3).standard_normal((2, FEATURES)).astype(np.float32)
    tensor = module.InferInput("input", [2, FEATURES], "FP32")
    tensor.set_data_from_numpy(x)
    result = client.infer("digits", [tensor], outputs=[module.InferRequestedOutput("logits", class_count=3)])
    got = result.as_numpy("logits")
    assert got.shape == (2, 3)
    w, b = digits_weights
    logits = classifier_reference(x, w, b)
    for row, strings in zip(logits, got, strict=True):
        parsed = [s.decode().split(":") for s in strings]
        assert [int(index) for _, index, _ in parsed] == list(np.argsort(-row)[:3])
        assert [label for _, _, label in parsed] == [LABELS[int(index)] for _, index, _ in parsed]
        np.testing.assert_allclose([float(v) for v, _, _ in parsed], np.sort(row)[::-1][:3], atol=1e-5)
    with pytest.raises(InferenceServerException, match="classification' must be a positive integer"):
        client.infer("digits", [tensor], outputs=[module.InferRequestedOutput("logits", class_count=-1)])
