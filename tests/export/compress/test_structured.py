import pytest
import torch

from modelpress.export.compress.structured import StructuredConfig, layer_widths, prune_structured
from modelpress.export.sizes import count_parameters, onnx_bytes
from modelpress.training.models import build_model
from tests.export.compress.conftest import export_onnx, quick_training

TINY = {
    "cnn": {"channels": [8, 16], "convs_per_block": 2, "hidden": 32, "dropout": 0.0},
    "mlp": {"hidden": [32, 16], "dropout": 0.0, "batch_norm": True},
    "transformer": {"d_model": 16, "nhead": 2, "num_layers": 1, "dim_feedforward": 32, "dropout": 0.0},
    "rnn": {"hidden_size": 8, "dropout": 0.0},
}


def _model(arch):
    torch.manual_seed(0)
    return build_model(arch, TINY[arch], input_shape=[64], num_outputs=10, task="classification").eval()


def test_cnn_channels_shrink_together_and_the_graph_gets_smaller(tmp_path, digits):
    model = _model("cnn")
    x = torch.from_numpy(digits.X_test[:4])
    dense_path = export_onnx(model, x, tmp_path / "dense" / "model.onnx")
    before = layer_widths(model)
    prune_structured(model, x, StructuredConfig(ratio=0.5, iterative_steps=2, finetune_epochs=0), progress=False)
    after = layer_widths(model)
    # every conv loses half its output channels, and its consumer the matching inputs
    assert after["features.0.0"] == [4, 1]
    assert after["features.0.3"] == [4, 4]
    assert after["features.1.0"] == [8, 4]
    bn = model.features[0][1]
    assert bn.num_features == 4
    assert bn.running_mean.shape == (4,)
    # the flatten is followed: the dense layer keeps only the inputs of surviving channels (8 ch x 2 x 2)
    assert after["head.1"] == [16, 32]
    # the classifier keeps its 10 classes
    assert after["head.3"][0] == before["head.3"][0] == 10
    assert model(x).shape == (4, 10)
    slim_path = export_onnx(model, x, tmp_path / "slim" / "model.onnx")
    assert onnx_bytes(slim_path) < 0.4 * onnx_bytes(dense_path)


def test_mlp_neurons_and_batch_norm_shrink_and_finetuning_runs(digits):
    model = _model("mlp")
    x = torch.from_numpy(digits.X_test[:4])
    calls = []

    def finetune(m, step):
        from modelpress.training.trainer import fit

        calls.append(count_parameters(m))
        return fit(m, digits, quick_training(1), progress=False).epochs_run

    cfg = StructuredConfig(ratio=0.5, iterative_steps=2, finetune_epochs=1)
    _, records = prune_structured(model, x, cfg, finetune, progress=False)
    assert layer_widths(model)["body.1"] == [16, 64]
    assert layer_widths(model)["body.4"] == [8, 16]
    assert model.body[2].num_features == 16
    # the parameter count falls at each step and fine-tuning ran after each
    assert len(calls) == 2
    assert calls[0] > calls[1]
    assert [r["finetune"] for r in records] == [1, 1]


def test_transformer_feed_forward_shrinks_attention_stays_whole(digits):
    model = _model("transformer")
    x = torch.from_numpy(digits.X_test[:4])
    prune_structured(model, x, StructuredConfig(ratio=0.5, finetune_epochs=0), progress=False)
    widths = layer_widths(model)
    assert widths["layers.0.ff.0"] == [16, 16]
    assert widths["layers.0.attn.qkv"] == [48, 16]
    assert model(x).shape == (4, 10)


def test_a_model_with_nothing_to_remove_is_refused(digits):
    with pytest.raises(ValueError, match="found nothing to remove in RNN"):
        prune_structured(_model("rnn"), torch.from_numpy(digits.X_test[:2]), StructuredConfig(finetune_epochs=0),
                         progress=False)  # fmt: skip


def test_bad_ratio_is_refused():
    with pytest.raises(ValueError, match="ratio"):
        StructuredConfig(ratio=1.5)
