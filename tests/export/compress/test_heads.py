import numpy as np
import onnx
import pytest
import torch

from modelpress.export.compress.heads import head_counts, head_importance, prune_heads
from modelpress.export.compress.structured import StructuredConfig, layer_widths, prune_structured
from modelpress.export.sizes import count_parameters, onnx_bytes
from modelpress.export.verify import run_ort
from modelpress.training.models import build_model
from tests.export.compress.conftest import export_onnx


def _transformer(layers=2, nhead=4, seed=0):
    torch.manual_seed(seed)
    cfg = {"d_model": 16, "nhead": nhead, "num_layers": layers, "dim_feedforward": 32, "dropout": 0.0}
    return build_model("transformer", cfg, input_shape=[64], num_outputs=10, task="classification").eval()


def _silence_head(block, head):
    dim, nhead = block.head_dim, block.nhead
    with torch.no_grad():
        for part in range(3):
            rows = slice((part * nhead + head) * dim, (part * nhead + head + 1) * dim)
            block.qkv.weight[rows] = 0
            block.qkv.bias[rows] = 0
        block.proj.weight[:, head * dim : (head + 1) * dim] = 0


def test_the_least_important_head_goes_and_a_silent_head_changes_nothing(digits):
    model = _transformer(layers=1)
    block = model.layers[0].attn
    _silence_head(block, 2)
    assert int(torch.argmin(head_importance(block))) == 2
    x = torch.from_numpy(digits.X_test[:16])
    with torch.no_grad():
        before = model(x)
    left = prune_heads(model, 0.25, head_counts(model))
    assert left == {"layers.0.attn": 3}
    # q, k, v lose a head's 4 rows each; proj loses its 4 input columns; the residual width stays 16
    assert layer_widths(model)["layers.0.attn.qkv"] == [36, 16]
    assert layer_widths(model)["layers.0.attn.proj"] == [16, 12]
    with torch.no_grad():
        assert torch.allclose(model(x), before, atol=1e-5)


def test_heads_shrink_step_by_step_with_finetuning_and_the_graph_follows(digits, tmp_path):
    model = _transformer(layers=2)
    x = torch.from_numpy(digits.X_test[:4])
    dense_path = export_onnx(model, x, tmp_path / "dense" / "model.onnx")
    dense_params = count_parameters(model)
    calls = []

    def finetune(m, step):
        calls.append(head_counts(m))
        return step

    cfg = StructuredConfig(ratio=0.0, heads=0.5, iterative_steps=2, finetune_epochs=1)
    _, records = prune_structured(model, x, cfg, finetune, progress=False)
    assert calls == [{"layers.0.attn": 3, "layers.1.attn": 3}, {"layers.0.attn": 2, "layers.1.attn": 2}]
    assert [r["heads"] for r in records] == calls
    # 2 of 4 heads per layer: qkv 48 -> 24 rows, proj 16 -> 8 inputs, in both layers; nothing else moves
    assert count_parameters(model) == dense_params - 2 * (24 * 16 + 24 + 16 * 8)
    assert layer_widths(model)["layers.1.attn.qkv"] == [24, 16]
    assert layer_widths(model)["layers.0.ff.0"] == [32, 16]
    slim_path = export_onnx(model, x, tmp_path / "slim" / "model.onnx")
    assert onnx_bytes(slim_path) < onnx_bytes(dense_path)
    with torch.no_grad():
        expected = model(torch.from_numpy(digits.X_test[:32])).numpy()
    assert np.abs(run_ort(slim_path, digits.X_test[:32]) - expected).max() < 1e-4


def test_heads_and_channels_together_and_bad_requests(digits):
    model = _transformer(layers=1)
    x = torch.from_numpy(digits.X_test[:4])
    prune_structured(model, x, StructuredConfig(ratio=0.5, heads=0.5, finetune_epochs=0), progress=False)
    assert head_counts(model) == {"layers.0.attn": 2}
    assert layer_widths(model)["layers.0.ff.0"] == [16, 16]
    with pytest.raises(ValueError, match="nothing to prune"):
        prune_structured(_transformer(), x, StructuredConfig(ratio=0.0, heads=0.0), progress=False)
    cnn = build_model("cnn", {"channels": [4, 8], "hidden": 0}, input_shape=[64], num_outputs=10,
                      task="classification")  # fmt: skip
    with pytest.raises(ValueError, match="no attention block"):
        prune_structured(cnn, x, StructuredConfig(ratio=0.0, heads=0.5), progress=False)


@pytest.mark.slow
def test_the_pass_publishes_a_transformer_with_fewer_heads_in_its_onnx_graph(checkpoint_for, tmp_path):
    from modelpress.export.api import export_checkpoint

    checkpoint, data = checkpoint_for("transformer")  # d_model 16, 2 heads of 8
    steps = {"fp32": [{"pass": "onnx"}],
             "heads": [{"pass": "prune-structured", "ratio": 0.0, "heads": 0.5, "finetune_epochs": 1},
                       {"pass": "onnx"}, {"pass": "optimize"}]}  # fmt: skip
    spec = {"variants": ["fp32", "heads"], "steps": steps, "verify": {"min_agreement": 0.0, "max_accuracy_drop": 1.0}}
    items = export_checkpoint(checkpoint, tmp_path / "repo", "tf", spec=spec, data=data, progress=False)
    published = {p.manifest.source["variant"]: p for p in items}
    lineage = published["heads"].manifest.lineage
    assert lineage[1].details["attention_heads"] == {"layers.0.attn": 1}
    graph = onnx.load(str(published["heads"].path / "model.onnx")).graph
    shapes = {tuple(t.dims) for t in graph.initializer}
    dense_shapes = {tuple(t.dims) for t in onnx.load(str(published["fp32"].path / "model.onnx")).graph.initializer}
    # the exported qkv projection has 3 x 8 outputs instead of 3 x 16 (stored as [in, out] or [out, in])
    assert {(16, 24), (24, 16)} & shapes
    assert not {(16, 24), (24, 16)} & dense_shapes
    assert {(16, 48), (48, 16)} & dense_shapes
    assert published["heads"].manifest.size.onnx_bytes < published["fp32"].manifest.size.onnx_bytes
