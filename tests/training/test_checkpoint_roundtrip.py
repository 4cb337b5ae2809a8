import json

import numpy as np
import pytest
import torch

from modelpress.training.api import TrainingError, evaluate_checkpoint, resume_checkpoint, train_recipe
from modelpress.training.checkpoint import (
    CheckpointError,
    CheckpointMeta,
    InputSpec,
    load_checkpoint,
    read_meta,
    save_checkpoint,
)
from modelpress.training.data import DataError, load_splits
from modelpress.training.models import ARCHITECTURES, build_model
from modelpress.training.trainer import predict

SMALL = {
    "mlp": {"hidden": [8], "batch_norm": True},
    "cnn": {"channels": [4], "hidden": 8},
    "rnn": {"hidden_size": 8, "cell": "lstm"},
    "transformer": {"d_model": 8, "nhead": 2, "num_layers": 1, "dim_feedforward": 8},
}


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_same_outputs_after_save_and_load(arch, tmp_path):
    model = build_model(arch, SMALL[arch], input_shape=[64], num_outputs=3, task="classification")
    model.train()
    model(torch.randn(16, 64))  # moves batch-norm running statistics away from their initial values
    model.eval()
    meta = CheckpointMeta(architecture=arch, arch_config=SMALL[arch], input_spec=InputSpec(shape=[64]), num_outputs=3)
    save_checkpoint(model, meta, tmp_path / "ckpt")
    loaded, loaded_meta = load_checkpoint(tmp_path / "ckpt")
    x = torch.randn(5, 64)
    assert torch.equal(loaded(x), model(x))
    assert loaded_meta.weights_sha256


def test_trained_checkpoint_records_everything(trained_ckpt):
    meta = read_meta(trained_ckpt)
    assert meta.architecture == "mlp"
    assert meta.arch_config["hidden"] == [16]
    assert meta.arch_config["activation"] == "relu"  # defaults resolved
    assert meta.input_spec.shape == [64]
    assert meta.num_outputs == 10
    assert meta.labels == [str(i) for i in range(10)]
    assert meta.preprocessing.type == "standardize"
    assert meta.data["seed"] == 0
    assert meta.data["source"] == "digits"
    assert set(meta.metrics) == {"train", "val", "test"}
    assert len(meta.metrics["test"]["confusion_matrix"]) == 10
    assert meta.training["epochs_run"] == 2
    assert meta.recipe["model"]["architecture"] == "mlp"
    assert {"torch", "numpy", "python"} <= set(meta.tool_versions)
    assert (trained_ckpt / "trainer_state.pt").is_file()


def test_loaded_model_reproduces_recorded_test_metrics(trained_ckpt):
    model, meta = load_checkpoint(trained_ckpt)
    splits = load_splits(meta.data, meta.data["seed"])
    acc = float((predict(model, splits.X_test).argmax(1) == splits.y_test).mean())
    assert acc == meta.metrics["test"]["accuracy"]
    assert evaluate_checkpoint(trained_ckpt)["metrics"]["accuracy"] == acc


def test_existing_output_is_refused_and_untouched(trained_ckpt, tiny_recipe):
    before = (trained_ckpt / "checkpoint.json").read_text()
    with pytest.raises(CheckpointError, match="already exists"):
        train_recipe(tiny_recipe(), trained_ckpt, progress=False)
    assert (trained_ckpt / "checkpoint.json").read_text() == before


def test_failed_write_leaves_nothing(tmp_path):
    model = build_model("mlp", {"hidden": [4]}, input_shape=[64], num_outputs=2, task="classification")
    meta = CheckpointMeta(
        architecture="mlp", arch_config={"hidden": [4]}, input_spec=InputSpec(shape=[64]), num_outputs=2
    )
    with pytest.raises(CheckpointError, match="plain, new file name"):
        save_checkpoint(model, meta, tmp_path / "ckpt", extra_files={"../escape": b"x"})
    assert list(tmp_path.iterdir()) == []


def test_edited_weights_are_detected(trained_ckpt, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained_ckpt, copy)
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 does not match"):
        load_checkpoint(copy)


def test_resume_continues_exactly(tmp_path, tiny_recipe):
    # a schedule that does not depend on the total epoch count, so 2 + 2 epochs must equal 4 in one go
    common = ("training.schedule.name=step", "training.schedule.step_size=1", "training.noise_std=0.1")
    train_recipe(tiny_recipe(*common, "training.epochs=2"), tmp_path / "first", progress=False)
    resume_checkpoint(tmp_path / "first", tmp_path / "resumed", ["training.epochs=4"], progress=False)
    train_recipe(tiny_recipe(*common, "training.epochs=4"), tmp_path / "straight", progress=False)
    resumed, meta = load_checkpoint(tmp_path / "resumed")
    straight, _ = load_checkpoint(tmp_path / "straight")
    assert [h["epoch"] for h in meta.training["history"]] == [1, 2, 3, 4]
    for a, b in zip(resumed.state_dict().values(), straight.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_resume_refuses_what_cannot_continue(trained_ckpt, tmp_path):
    with pytest.raises(TrainingError, match="already ran 2 epochs"):
        resume_checkpoint(trained_ckpt, tmp_path / "a", [], progress=False)
    with pytest.raises(TrainingError, match="cannot change model"):
        resume_checkpoint(trained_ckpt, tmp_path / "b", ["training.epochs=3", "model.config.hidden=[4]"])
    assert not (tmp_path / "a").exists()
    assert not (tmp_path / "b").exists()


def test_regression_checkpoint(tmp_path, tiny_recipe):
    out = train_recipe(tiny_recipe("task=regression", "training.early_stopping.metric=val_r2"), tmp_path / "r")
    meta = read_meta(out)
    assert meta.task == "regression"
    assert meta.labels is None
    assert meta.num_outputs == 1
    assert set(meta.metrics["test"]) >= {"mse", "mae", "r2"}
    assert evaluate_checkpoint(out)["metrics"]["r2"] == pytest.approx(meta.metrics["test"]["r2"])


def test_csv_checkpoint_evaluated_on_csv_and_npz(tmp_path, tiny_recipe, digits_csv, digits_npz):
    out = train_recipe(
        tiny_recipe("data.source=csv", f"data.path='{digits_csv}'", "data.label=digit"), tmp_path / "c", progress=False
    )
    meta = read_meta(out)
    assert meta.labels[0] == "eight"  # text labels, sorted
    result = evaluate_checkpoint(out, digits_csv, "digit")
    assert result["samples"] == 300
    assert 0.0 <= result["metrics"]["accuracy"] <= 1.0
    # the NPZ holds digits as numbers, which are not among this model's class names
    with pytest.raises(DataError, match="is not one of the model's classes"):
        evaluate_checkpoint(out, digits_npz)


def test_evaluate_external_shape_mismatch(trained_ckpt, tmp_path):
    path = tmp_path / "small.npz"
    np.savez(path, X=np.zeros((4, 10), dtype=np.float32), y=np.zeros(4, dtype=np.int64))
    with pytest.raises(DataError, match=r"shape \[10\], the model expects \[64\]"):
        evaluate_checkpoint(trained_ckpt, path)


def test_checkpoint_json_is_plain_json(trained_ckpt):
    meta = json.loads((trained_ckpt / "checkpoint.json").read_text())
    assert meta["format_version"] == 1
    assert "state" not in meta["training"]
