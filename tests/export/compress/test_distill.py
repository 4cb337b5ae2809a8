import pytest
import torch
import torch.nn.functional as F

from modelpress.export.compress.distill import (
    DistillConfig,
    StudentWithProjection,
    build_student,
    distill,
    distillation_loss,
    soft_target_loss,
)
from modelpress.training.models import build_model
from modelpress.training.trainer import fit
from tests.export.compress.conftest import quick_training


@pytest.fixture(scope="module")
def teacher(digits):
    torch.manual_seed(0)
    model = build_model("mlp", {"hidden": [64], "dropout": 0.0}, input_shape=[64], num_outputs=10,
                        task="classification")  # fmt: skip
    fit(model, digits, quick_training(4), progress=False)
    return model.eval()


def _kl_to_teacher(student, teacher, X):
    x = torch.from_numpy(X)
    with torch.no_grad():
        return float(soft_target_loss(student.eval()(x), teacher(x), temperature=1.0))


def test_loss_mixes_soft_and_hard_terms():
    torch.manual_seed(0)
    s, t, y = torch.randn(8, 10), torch.randn(8, 10), torch.randint(0, 10, (8,))
    assert float(distillation_loss(s, t, y, 2.0, 0.0)) == pytest.approx(float(F.cross_entropy(s, y)))
    assert float(distillation_loss(s, t, y, 2.0, 1.0)) == pytest.approx(float(soft_target_loss(s, t, 2.0)))
    assert float(soft_target_loss(t, t, 3.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(soft_target_loss(s, t, 3.0)) > 0


@pytest.mark.slow
def test_distillation_lowers_the_students_loss_against_the_teacher(digits, teacher):
    cfg = DistillConfig(architecture="mlp", config={"hidden": [8], "dropout": 0.0}, temperature=2.0, alpha=0.9)
    torch.manual_seed(1)
    student = build_student(cfg, input_shape=[64], num_outputs=10)
    before = _kl_to_teacher(student, teacher, digits.X_test)
    teacher_state = {k: v.clone() for k, v in teacher.state_dict().items()}
    trained, result = distill(teacher, digits, cfg, quick_training(3), student=student, progress=False)
    after = _kl_to_teacher(trained, teacher, digits.X_test)
    assert after < 0.75 * before
    assert result.epochs_run == 3
    assert sum(p.numel() for p in trained.parameters()) < sum(p.numel() for p in teacher.parameters()) / 5
    # the teacher is left as it was, trainable flags included
    assert all(torch.equal(v, teacher_state[k]) for k, v in teacher.state_dict().items())
    assert all(p.requires_grad for p in teacher.parameters())


def test_feature_loss_trains_a_projection_and_returns_the_bare_student(digits, teacher):
    cfg = DistillConfig(architecture="mlp", config={"hidden": [8], "dropout": 0.0}, feature_weight=1.0)
    torch.manual_seed(1)
    student = build_student(cfg, input_shape=[64], num_outputs=10)
    trained, _ = distill(teacher, digits, cfg, quick_training(1), student=student, progress=False)
    assert not isinstance(trained, StudentWithProjection)
    assert not any(name.startswith("projection") for name in trained.state_dict())
    # the feature taps are removed afterwards: nothing keeps hooking the teacher or the student
    assert all(not m._forward_pre_hooks for m in (*teacher.modules(), *trained.modules()))


def test_feature_loss_changes_what_the_student_learns(digits, teacher):
    def train(weight):
        cfg = DistillConfig(architecture="mlp", config={"hidden": [8], "dropout": 0.0}, feature_weight=weight)
        torch.manual_seed(1)
        student = build_student(cfg, input_shape=[64], num_outputs=10)
        return distill(teacher, digits, cfg, quick_training(1), student=student, progress=False)[0]

    plain, with_features = train(0.0), train(5.0)
    assert not torch.allclose(plain.head.weight, with_features.head.weight)


def test_regression_is_refused_with_a_reason(digits, teacher):
    class Regression:
        task = "regression"

    with pytest.raises(ValueError, match="needs a classification task"):
        distill(teacher, Regression(), DistillConfig(), quick_training(1), progress=False)


def test_unknown_student_option_names_the_key():
    with pytest.raises(ValueError, match="unknown mlp config key 'width'"):
        build_student(DistillConfig(config={"width": 3}), input_shape=[64], num_outputs=10)


def _augmenter(**fields):
    from modelpress.export.compress.distill import ImageAugmenter

    mean, std = [0.5] * 64, [2.0] * 64
    return ImageAugmenter([1, 8, 8], mean, std, DistillConfig(**fields)), torch.tensor(mean), torch.tensor(std)


def test_image_shifts_move_pixels_by_at_most_the_shift_and_fill_with_blank():
    augment, mean, std = _augmenter(shift=1.0)
    raw = torch.zeros(256, 8, 8)
    raw[:, 3:5, 3:5] = 16.0  # a bright square in the middle: a shift moves it, it never leaves the image
    x = ((raw.reshape(256, 64) - mean) / std).reshape(256, 64)
    torch.manual_seed(0)
    moved = (augment(x) * std + mean).reshape(256, 8, 8)
    assert moved.shape == raw.shape
    grid = torch.arange(8.0)
    centre_rows = (moved.sum(2) * grid).sum(1) / moved.sum((1, 2))
    assert torch.all((centre_rows - 3.5).abs() <= 1.0 + 1e-4)
    assert (centre_rows - 3.5).abs().max() > 0.3  # it really moves
    assert torch.allclose(moved.sum((1, 2)), raw.sum((1, 2)), rtol=1e-4)  # nothing lost at the border
    assert torch.allclose(moved[:, 0, :], torch.zeros(256, 8), atol=1e-5)  # blank (raw 0) stays blank


def test_augmentation_off_by_default_and_image_shape_is_found_or_refused():
    from modelpress.export.compress.distill import image_shape_of

    assert not DistillConfig().augments
    assert DistillConfig(rotate=5.0).augments
    mlp = build_model("mlp", {"hidden": [8]}, input_shape=[64], num_outputs=10, task="classification")
    assert image_shape_of(mlp, num_features=64) == [1, 8, 8]
    with pytest.raises(ValueError, match="63 features are not a square image"):
        image_shape_of(mlp, num_features=63)


@pytest.mark.slow
def test_distillation_with_image_augmentation_lowers_the_loss(digits, teacher):
    # rotations and zooms: digits the teacher still reads (shifts are not, under per-pixel standardisation)
    cfg = DistillConfig(architecture="mlp", config={"hidden": [16], "dropout": 0.0}, temperature=2.0, alpha=0.9,
                        rotate=10.0, scale=0.1)  # fmt: skip
    torch.manual_seed(1)
    student = build_student(cfg, input_shape=[64], num_outputs=10)
    before = _kl_to_teacher(student, teacher, digits.X_test)
    trained, _ = distill(teacher, digits, cfg, quick_training(3), student=student, progress=False)
    assert _kl_to_teacher(trained, teacher, digits.X_test) < 0.75 * before
