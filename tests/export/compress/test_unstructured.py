import onnx
import pytest
import torch
from torch import nn

from modelpress.export.compress.unstructured import (
    UnstructuredConfig,
    global_magnitude_prune,
    make_permanent,
    prune_unstructured,
    sparsity_of,
)
from modelpress.export.sizes import count_nonzero_parameters, count_parameters, gzip_bytes, onnx_bytes
from modelpress.training.models import build_model
from tests.export.compress.conftest import export_onnx, quick_training


def _mlp(seed=0):
    torch.manual_seed(seed)
    return build_model("mlp", {"hidden": [32, 16], "dropout": 0.0}, input_shape=[64], num_outputs=10,
                       task="classification")  # fmt: skip


def test_global_magnitude_prune_reaches_the_target_and_ranks_across_layers():
    model = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.arange(1, 17, dtype=torch.float32).reshape(4, 4) / 100)  # all small
        model[1].weight.copy_(torch.arange(1, 17, dtype=torch.float32).reshape(4, 4))  # all large
    global_magnitude_prune(model, 0.5)
    # one global ranking: the small layer loses everything, the large one nothing
    assert int((model[0].weight == 0).sum()) == 16
    assert int((model[1].weight == 0).sum()) == 0
    assert sparsity_of(model) == pytest.approx(0.5)


def test_iterative_pruning_keeps_pruned_weights_zero_through_finetuning(digits):
    model = _mlp()
    seen = []

    def finetune(m, step):
        from modelpress.training.trainer import fit

        seen.append(sparsity_of(m))
        fit(m, digits, quick_training(1), progress=False)
        # the masks are on during fine-tuning: training does not revive a pruned weight
        assert sparsity_of(m) == pytest.approx(seen[-1])
        return {"step": step}

    cfg = UnstructuredConfig(sparsity=0.9, steps=[0.5, 0.75], finetune_epochs=1)
    pruned, records = prune_unstructured(model, cfg, finetune, progress=False)
    assert [r["target_sparsity"] for r in records] == [0.5, 0.75, 0.9]
    assert seen == pytest.approx([0.5, 0.75, 0.9], abs=1e-3)
    assert sparsity_of(pruned) == pytest.approx(0.9, abs=1e-3)
    names = list(pruned.state_dict())
    assert not any(n.endswith(("weight_orig", "weight_mask")) for n in names)
    assert all(not m._forward_pre_hooks for m in pruned.modules())


def test_masks_are_gone_from_the_export_and_only_gzip_shrinks(tmp_path, digits):
    dense = _mlp()
    pruned = _mlp()
    prune_unstructured(pruned, UnstructuredConfig(sparsity=0.8, steps=[], finetune_epochs=0), progress=False)
    x = torch.from_numpy(digits.X_test[:2])
    paths = {
        name: export_onnx(m, x, tmp_path / name / "model.onnx") for name, m in (("dense", dense), ("pruned", pruned))
    }

    initializers = [t.name for t in onnx.load(str(paths["pruned"])).graph.initializer]
    assert not any("orig" in n or "mask" in n for n in initializers)
    # dense storage: the zeros still take 4 bytes each; gzip sees the runs of zeros
    assert abs(onnx_bytes(paths["pruned"]) - onnx_bytes(paths["dense"])) < 200
    assert gzip_bytes(paths["pruned"]) < 0.5 * gzip_bytes(paths["dense"])
    assert count_parameters(pruned) == count_parameters(dense)
    assert count_nonzero_parameters(pruned) < 0.3 * count_parameters(pruned)


def test_make_permanent_folds_the_mask_into_the_weight():
    model = nn.Sequential(nn.Linear(8, 8))
    global_magnitude_prune(model, 0.5)
    masked = model[0].weight.detach().clone()
    make_permanent(model)
    assert isinstance(model[0].weight, nn.Parameter)
    assert torch.equal(model[0].weight.detach(), masked)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sparsity": 1.0}, "less than 1"),
        ({"steps": [0.75, 0.5]}, "strictly ascending"),
        ({"steps": [0.0]}, "strictly between 0 and 1"),
    ],
)
def test_bad_configs_name_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UnstructuredConfig(**kwargs)


def test_a_model_without_prunable_layers_is_refused():
    with pytest.raises(ValueError, match="no Linear or Conv layer"):
        global_magnitude_prune(nn.Sequential(nn.ReLU()), 0.5)
