import pytest
import torch

from modelpress.training.models import ARCHITECTURES, build_model, resolve_config

SMALL = {
    "mlp": {"hidden": [16]},
    "cnn": {"channels": [4, 8], "hidden": 16},
    "rnn": {"hidden_size": 8},
    "transformer": {"d_model": 16, "nhead": 2, "num_layers": 1, "dim_feedforward": 16},
}


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_output_shape_and_gradients(architecture, task):
    outputs = 10 if task == "classification" else 1
    model = build_model(architecture, SMALL[architecture], input_shape=[64], num_outputs=outputs, task=task)
    x = torch.randn(3, 64)
    y = model(x)
    assert y.shape == (3, outputs)
    y.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize(
    ("architecture", "config"),
    [
        ("rnn", {"cell": "lstm", "bidirectional": True, "num_layers": 2, "pooling": "last"}),
        ("transformer", {"pooling": "cls", "d_model": 16, "nhead": 4}),
        ("cnn", {"image_shape": [4, 4, 4], "channels": [8], "kernel_size": 5, "hidden": 0}),
        ("mlp", {"hidden": [8, 8], "batch_norm": True, "activation": "gelu"}),
    ],
)
def test_variants_run_in_eval_mode_deterministically(architecture, config):
    model = build_model(architecture, config, input_shape=[64], num_outputs=4, task="classification").eval()
    x = torch.randn(2, 64)
    assert torch.equal(model(x), model(x))


def test_unknown_architecture_names_it():
    with pytest.raises(ValueError, match="unknown architecture 'resnet'"):
        build_model("resnet", {}, input_shape=[64], num_outputs=2, task="classification")


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_unknown_config_key_names_it(architecture):
    with pytest.raises(ValueError, match="'widthh'"):
        build_model(architecture, {"widthh": 3}, input_shape=[64], num_outputs=2, task="classification")


@pytest.mark.parametrize(
    ("architecture", "config"),
    [("cnn", {"image_shape": [1, 8, 9]}), ("rnn", {"seq_shape": [8, 7]}), ("transformer", {"seq_shape": [4, 4]})],
)
def test_shape_that_does_not_fit_names_both(architecture, config):
    key = next(iter(config))
    with pytest.raises(ValueError, match=rf"{key} .* does not fit input_shape \[64\]"):
        build_model(architecture, config, input_shape=[64], num_outputs=2, task="classification")


def test_too_many_pooling_blocks_rejected():
    with pytest.raises(ValueError, match="pooling blocks"):
        build_model("cnn", {"channels": [4, 4, 4, 4]}, input_shape=[64], num_outputs=2, task="classification")


def test_bad_value_and_task_rejected():
    with pytest.raises(ValueError, match="dropout"):
        build_model("mlp", {"dropout": 1.5}, input_shape=[64], num_outputs=2, task="classification")
    with pytest.raises(ValueError, match="unknown task 'ranking'"):
        build_model("mlp", {}, input_shape=[64], num_outputs=2, task="ranking")


def test_resolve_config_fills_defaults():
    cfg = resolve_config("cnn", {"channels": [8]})
    assert cfg["channels"] == [8]
    assert cfg["image_shape"] == [1, 8, 8]


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_onnx_export_with_dynamic_batch(architecture, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = build_model(architecture, SMALL[architecture], input_shape=[64], num_outputs=3, task="classification")
    model.eval()
    path = tmp_path / "m.onnx"
    torch.onnx.export(
        model,
        (torch.randn(2, 64),),
        str(path),
        input_names=["input"],
        output_names=["output"],
        dynamo=False,
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
    )
    x = torch.randn(5, 64)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(got), model(x).detach(), atol=1e-5, rtol=1e-4)
