"""Knowledge distillation: a small student learns from a trained teacher's soft targets and the hard labels.

Loss (Hinton et al.): ``alpha * T² * KL(softmax(t/T) ‖ softmax(s/T)) + (1 - alpha) * CE(s, y)``; the T² keeps
the soft term's gradients on the same scale whatever the temperature. Optionally the student's penultimate
features (the input of its output layer) are projected to the teacher's width and pulled towards the
teacher's with an MSE term; the projection is trained with the student and then dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modelpress.export.compress.config import DistillConfig
from modelpress.export.compress.structured import output_layer

if TYPE_CHECKING:
    from modelpress.training.trainer import FitResult


def soft_target_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T² * KL(teacher ‖ student)`` on temperature-softened distributions, averaged over the batch."""
    log_student = F.log_softmax(student_logits / temperature, dim=-1)
    log_teacher = F.log_softmax(teacher_logits / temperature, dim=-1)
    return F.kl_div(log_student, log_teacher, log_target=True, reduction="batchmean") * temperature**2


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """Soft-target KL and hard-label cross-entropy, mixed by ``alpha``."""
    soft = soft_target_loss(student_logits, teacher_logits, temperature)
    hard = F.cross_entropy(student_logits, labels)
    return alpha * soft + (1.0 - alpha) * hard


def mix(x: torch.Tensor, concentration: float) -> torch.Tensor:
    """Each sample blended with a random other one, weights drawn from Beta(concentration, concentration)."""
    weights = torch.distributions.Beta(concentration, concentration).sample((len(x),)).to(x.device)
    weights = weights.reshape(-1, *([1] * (x.ndim - 1)))
    return weights * x + (1 - weights) * x[torch.randperm(len(x), device=x.device)]


class ImageAugmenter:
    """Random small affine transforms (shift, rotation, zoom) of preprocessed flat or image inputs.

    Inputs arrive standardised; the transform works on the raw pixels (so that what moves in from outside the
    image is blank, 0 in raw units) and standardises the result again.
    """

    def __init__(self, image_shape: list[int] | tuple[int, ...], mean: Any, std: Any, cfg: DistillConfig):
        if len(image_shape) != 3:
            raise ValueError(f"image augmentation needs an image_shape [channels, height, width], got {image_shape}")
        self.image_shape = tuple(int(d) for d in image_shape)
        self.mean = torch.as_tensor(mean, dtype=torch.float32) if mean is not None else None
        self.std = torch.as_tensor(std, dtype=torch.float32) if std is not None else None
        self.cfg = cfg

    def _theta(self, n: int) -> torch.Tensor:
        c = self.cfg
        _, h, w = self.image_shape
        angle = (torch.rand(n) * 2 - 1) * c.rotate * torch.pi / 180
        zoom = 1 + (torch.rand(n) * 2 - 1) * c.scale
        # affine_grid works in [-1, 1] coordinates: one pixel is 2 / size
        tx = (torch.rand(n) * 2 - 1) * c.shift * 2 / w
        ty = (torch.rand(n) * 2 - 1) * c.shift * 2 / h
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        return torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(len(x), -1)
        mean = self.mean.to(x.device) if self.mean is not None else 0.0
        std = self.std.to(x.device) if self.std is not None else 1.0
        raw = (flat * std + mean).reshape(len(x), *self.image_shape)
        grid = F.affine_grid(self._theta(len(x)).to(x.device), list(raw.shape), align_corners=False)
        moved = F.grid_sample(raw, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return ((moved.reshape(len(x), -1) - mean) / std).reshape(shape)


def image_shape_of(*models: nn.Module, num_features: int) -> list[int]:
    """The ``image_shape`` of the first model that has one, else a square single-channel image, else an error."""
    for model in models:
        shape = getattr(model, "image_shape", None)
        if shape is not None:
            return list(shape)
    side = round(num_features**0.5)
    if side * side == num_features:
        return [1, side, side]
    raise ValueError(f"image augmentation (shift/rotate/scale) needs image inputs; {num_features} features "
                     "are not a square image and neither model has an image_shape")  # fmt: skip


def held_out_probe(x_val: Any, copies: int = 20, noise: float = 0.2, seed: int = 1234) -> torch.Tensor:
    """Validation images, noisy copies and mixtures of pairs: ~40x more points of the teacher's function.

    A selection signal with more points than the 270 validation labels: how closely a student follows the
    teacher there (never the test split).
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(x_val, dtype=torch.float32)
    noisy = [x + noise * torch.randn(x.shape, generator=gen) for _ in range(copies)]
    mixed = []
    for _ in range(copies):
        w = torch.rand(len(x), 1, generator=gen)
        mixed.append(w * x + (1 - w) * x[torch.randperm(len(x), generator=gen)])
    return torch.cat([x, *noisy, *mixed])


def teacher_fidelity(student: nn.Module, teacher: nn.Module, probe: torch.Tensor) -> dict[str, float]:
    """Top-1 agreement and KL(teacher ‖ student) at T=1 on the probe."""
    with torch.no_grad():
        s, t = student.eval()(probe), teacher.eval()(probe)
    return {"probe_agree": float((s.argmax(1) == t.argmax(1)).float().mean()),
            "probe_kl": float(soft_target_loss(s, t, 1.0))}  # fmt: skip


class _FeatureTap:
    """Keeps the latest input of a module (the penultimate features when put on the output layer)."""

    def __init__(self, module: nn.Module):
        self.value: torch.Tensor | None = None
        self.handle = module.register_forward_pre_hook(self._keep)

    def _keep(self, _module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        self.value = args[0]

    def close(self) -> None:
        self.handle.remove()


class StudentWithProjection(nn.Module):
    """The student plus the projection of its features to the teacher's width, trained together.

    Wrapping both in one module lets a standard trainer optimise the projection with the student; the
    forward pass is the student's, so validation measures the student alone.
    """

    def __init__(self, student: nn.Module, student_width: int, teacher_width: int):
        super().__init__()
        self.student = student
        self.projection = nn.Linear(student_width, teacher_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.student(x)


def feature_width(model: nn.Module) -> int:
    """Width of the penultimate features: the inputs of the output layer."""
    layer = output_layer(model)
    return int(layer.weight.shape[1])


def make_loss_fn(
    teacher: nn.Module,
    cfg: DistillConfig,
    wrapper: StudentWithProjection | None = None,
    augmenter: ImageAugmenter | None = None,
) -> tuple[Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor], Callable[[], None]]:
    """A ``loss_fn(model, x, y)`` for :func:`modelpress.training.trainer.fit`, and a function releasing its hooks.

    The teacher runs in eval mode without gradients on the same (possibly noise-augmented) batch as the student,
    plus, with ``augmenter``, a transformed copy of it and, with mixup, a mixed copy: both only soft-labelled.
    """
    teacher.eval()
    frozen = [(p, p.requires_grad) for p in teacher.parameters()]
    for p, _ in frozen:
        p.requires_grad_(False)
    teacher_tap = _FeatureTap(output_layer(teacher)) if wrapper is not None else None
    student_tap = _FeatureTap(output_layer(wrapper.student)) if wrapper is not None else None

    def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if next(teacher.parameters()).device != x.device:
            teacher.to(x.device)
        n = len(x)
        extra = [augmenter(x)] if augmenter is not None else []
        if cfg.mixup > 0:
            extra.append(mix(x, cfg.mixup))
        x = torch.cat([x, *extra])
        with torch.no_grad():
            teacher_logits = teacher(x)
        student_logits = model(x)
        loss = distillation_loss(student_logits[:n], teacher_logits[:n], y, cfg.temperature, cfg.alpha)
        if extra:  # transformed and mixed inputs are labelled by the teacher only: soft targets
            loss = loss + cfg.alpha * soft_target_loss(student_logits[n:], teacher_logits[n:], cfg.temperature)
        if wrapper is not None and teacher_tap is not None and student_tap is not None:
            projected = wrapper.projection(student_tap.value.flatten(1))
            loss = loss + cfg.feature_weight * F.mse_loss(projected, teacher_tap.value.flatten(1))
        return loss

    def close() -> None:
        for tap in (teacher_tap, student_tap):
            if tap is not None:
                tap.close()
        for p, flag in frozen:
            p.requires_grad_(flag)

    return loss_fn, close


def build_student(cfg: DistillConfig, *, input_shape: list[int], num_outputs: int) -> nn.Module:
    """An untrained student of ``cfg.architecture`` (ValueError naming a bad option)."""
    from modelpress.training.models import build_model

    return build_model(cfg.architecture, cfg.config, input_shape=input_shape, num_outputs=num_outputs,
                       task="classification")  # fmt: skip


def distill(
    teacher: nn.Module,
    splits: Any,
    cfg: DistillConfig,
    training_cfg: Any,
    *,
    student: nn.Module | None = None,
    progress: bool = True,
) -> tuple[nn.Module, FitResult]:
    """Train a student on ``splits`` against ``teacher`` and return it with the trainer's result.

    Args:
        teacher: the trained model (left unchanged).
        splits: :class:`modelpress.training.data.Splits` (classification) the teacher was trained on.
        cfg: student architecture and loss weights.
        training_cfg: :class:`modelpress.training.recipe.TrainingConfig` (or its dict) for the student's training.
        student: a ready student (e.g. initialised elsewhere) instead of building one from ``cfg``.
        progress: show the trainer's progress bar.
    """
    from modelpress.training.trainer import fit

    if splits.task != "classification":
        raise ValueError(f"distillation with soft targets needs a classification task, got {splits.task!r}")
    student = student or build_student(cfg, input_shape=splits.input_shape, num_outputs=splits.num_outputs)
    wrapper = None
    trained: nn.Module = student
    if cfg.feature_weight > 0:
        wrapper = StudentWithProjection(student, feature_width(student), feature_width(teacher))
        trained = wrapper
    augmenter = None
    if cfg.augments:
        shape = image_shape_of(teacher, student, num_features=int(np.prod(splits.input_shape)))
        pre = splits.preprocessing
        augmenter = ImageAugmenter(shape, pre.mean if pre.type == "standardize" else None,
                                   pre.std if pre.type == "standardize" else None, cfg)  # fmt: skip
    loss_fn, close = make_loss_fn(teacher, cfg, wrapper, augmenter)
    try:
        result = fit(trained, splits, training_cfg, loss_fn=loss_fn, progress=progress)
    finally:
        close()
    student.eval()
    return student, result
