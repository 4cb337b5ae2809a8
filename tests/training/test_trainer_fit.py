import math

import numpy as np
import pytest
import torch

from modelpress.training.data import load_splits
from modelpress.training.models import ARCHITECTURES, build_model
from modelpress.training.recipe import RecipeError, ScheduleConfig, TrainingConfig, recipe_from_dict
from modelpress.training.trainer import fit, lr_factor, predict

SMALL = {
    "mlp": {"hidden": [32]},
    "cnn": {"channels": [8], "hidden": 32},
    "rnn": {"hidden_size": 16},
    "transformer": {"d_model": 16, "nhead": 2, "num_layers": 1, "dim_feedforward": 32},
}


@pytest.fixture(scope="module")
def digits():
    return load_splits({}, seed=0)


def _model(arch="mlp", task="classification", outputs=10):
    torch.manual_seed(0)
    return build_model(arch, SMALL[arch], input_shape=[64], num_outputs=outputs, task=task)


def _cfg(**kw):
    base = {"epochs": 2, "batch_size": 128, "optimizer": {"name": "adamw", "lr": 0.01}}
    return TrainingConfig.model_validate({**base, **kw})


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_each_architecture_learns_digits(arch, digits):
    model = _model(arch)
    result = fit(model, digits, _cfg(epochs=3), progress=False)
    history = result.history
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    acc = (predict(model, digits.X_val).argmax(1) == digits.y_val).mean()
    assert acc > 0.3  # chance is 0.1; 3 short epochs


@pytest.mark.parametrize(
    "optimizer",
    [
        {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True},
        {"name": "sgd", "lr": 0.05, "momentum": 0.0},
        {"name": "adam", "lr": 0.01},
        {"name": "adamw", "lr": 0.01, "weight_decay": 0.01},
    ],
)
def test_each_optimizer_reduces_the_loss(optimizer, digits):
    result = fit(_model(), digits, _cfg(optimizer=optimizer), progress=False)
    losses = [h["train_loss"] for h in result.history]
    assert losses[1] < losses[0]


def test_nesterov_without_momentum_rejected(digits):
    with pytest.raises(ValueError, match="nesterov needs momentum"):
        fit(_model(), digits, _cfg(optimizer={"name": "sgd", "momentum": 0.0, "nesterov": True}), progress=False)
    with pytest.raises(RecipeError, match="nesterov needs momentum"):
        recipe_from_dict(
            {}, ["training.optimizer.name=sgd", "training.optimizer.momentum=0", "training.optimizer.nesterov=true"]
        )


@pytest.mark.parametrize("name", ["constant", "step", "exponential", "cosine"])
def test_each_schedule_sets_the_learning_rate(name, digits):
    cfg = _cfg(epochs=3, schedule={"name": name, "step_size": 1, "gamma": 0.5, "warmup_epochs": 0})
    result = fit(_model(), digits, cfg, progress=False)
    lrs = [h["lr"] for h in result.history]
    steps = math.ceil(len(digits.y_train) / 128)
    expected = [0.01 * lr_factor(steps * e, cfg.schedule, 3, steps) for e in (1, 2, 3)]
    assert lrs == pytest.approx(expected)
    if name == "constant":
        assert lrs == pytest.approx([0.01] * 3)
    else:
        assert lrs[2] < lrs[0]


def test_schedule_shapes():
    warm = ScheduleConfig(name="constant", warmup_epochs=2)
    assert lr_factor(0, warm, 10, 10) == pytest.approx(1 / 20)
    assert lr_factor(19, warm, 10, 10) == pytest.approx(1.0)
    assert lr_factor(25, warm, 10, 10) == 1.0
    step = ScheduleConfig(name="step", step_size=2, gamma=0.1)
    assert [lr_factor(e * 10, step, 10, 10) for e in (0, 1, 2, 4)] == pytest.approx([1, 1, 0.1, 0.01])
    exp = ScheduleConfig(name="exponential", gamma=0.5)
    assert lr_factor(30, exp, 10, 10) == pytest.approx(0.125)
    cos = ScheduleConfig(name="cosine", min_lr_ratio=0.1)
    assert lr_factor(0, cos, 10, 10) == pytest.approx(1.0)
    assert lr_factor(50, cos, 10, 10) == pytest.approx(0.55)
    assert lr_factor(100, cos, 10, 10) == pytest.approx(0.1)


def test_early_stopping_stops_and_restores_the_best(digits):
    # a learning rate this small cannot improve val_loss by min_delta: stop after `patience` epochs
    cfg = _cfg(
        epochs=20,
        optimizer={"name": "sgd", "lr": 1e-9, "momentum": 0.0},
        early_stopping={"metric": "val_loss", "patience": 2, "min_delta": 0.01},
    )
    result = fit(_model(), digits, cfg, progress=False)
    assert result.stopped_early
    assert result.epochs_run == 3
    assert result.best_epoch == 1


def test_restore_best_returns_the_best_epochs_weights(digits):
    model = _model()
    cfg = _cfg(epochs=3, early_stopping={"metric": "val_accuracy", "patience": 5})
    result = fit(model, digits, cfg, progress=False)
    acc = (predict(model, digits.X_val).argmax(1) == digits.y_val).mean()
    assert acc == pytest.approx(result.best_value)
    assert acc == pytest.approx(max(h["val_accuracy"] for h in result.history))


def test_unknown_monitor_metric_rejected(digits):
    with pytest.raises(ValueError, match="unknown classification metric 'val_r2'"):
        fit(_model(), digits, _cfg(early_stopping={"metric": "val_r2"}), progress=False)


def test_custom_loss_fn_is_used(digits):
    calls = []

    def loss_fn(model, x, y):
        calls.append(len(x))
        # distillation-style soft targets: match a uniform distribution -> outputs lose confidence
        log_p = torch.log_softmax(model(x), dim=1)
        return -(log_p.mean(dim=1)).mean()

    model = _model()
    fit(model, digits, _cfg(epochs=1), loss_fn=loss_fn, progress=False)
    assert sum(calls) == len(digits.y_train)
    probs = torch.softmax(torch.from_numpy(predict(model, digits.X_val)), dim=1)
    assert probs.max().item() < 0.5


def _weight_norm(model, p):
    return sum(w.abs().pow(p).sum().item() for w in model.parameters() if w.ndim > 1)


@pytest.mark.parametrize(("key", "p"), [("l1", 1), ("l2", 2)])
def test_penalties_shrink_weights(key, p, digits):
    plain, penalised = _model(), _model()
    fit(plain, digits, _cfg(epochs=2), progress=False)
    fit(penalised, digits, _cfg(epochs=2, **{key: 0.01}), progress=False)
    assert _weight_norm(penalised, p) < 0.9 * _weight_norm(plain, p)


def test_gradient_clipping_limits_each_step(digits):
    # with a huge lr, one unclipped SGD step moves weights far more than a clipped one
    cfg = {"epochs": 1, "batch_size": 2000, "optimizer": {"name": "sgd", "lr": 10.0, "momentum": 0.0}}
    moved = []
    for clip in (None, 1e-3):
        model = _model()
        before = [w.detach().clone() for w in model.parameters()]
        fit(model, digits, _cfg(**cfg, grad_clip=clip, early_stopping={"restore_best": False}), progress=False)
        delta = torch.sqrt(sum(((w - b) ** 2).sum() for w, b in zip(model.parameters(), before, strict=True)))
        moved.append(delta.item())
    assert moved[1] == pytest.approx(10.0 * 1e-3, rel=1e-3)
    assert moved[0] > 10 * moved[1]


def test_dropout_and_noise_make_training_stochastic_but_seeded(digits):
    cfg = _cfg(epochs=1, noise_std=0.5, seed=7)
    a, b = _model(), _model()
    fit(a, digits, cfg, progress=False)
    fit(b, digits, cfg, progress=False)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    c = _model()
    fit(c, digits, _cfg(epochs=1, noise_std=0.5, seed=8), progress=False)
    assert not all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values(), strict=True))


def test_regression_mlp_learns_the_digit_value():
    splits = load_splits({}, seed=0, task="regression")
    model = _model(task="regression", outputs=1)
    cfg = _cfg(epochs=5, early_stopping={"metric": "val_r2"})
    result = fit(model, splits, cfg, progress=False)
    assert result.best_value > 0.5
    assert set(result.history[0]) >= {"val_mse", "val_mae", "val_r2"}
    assert predict(model, splits.X_test).shape == (len(splits.y_test), 1)
    assert np.isfinite(result.history[-1]["train_loss"])
