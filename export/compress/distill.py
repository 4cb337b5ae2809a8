"""Knowledge distillation: a small student learns from a trained teacher's soft targets and the hard labels.

Loss (Hinton et al.): ``alpha * T² * KL(softmax(t/T) ‖ softmax(s/T)) + (1 - alpha) * CE(s, y)``; the T² keeps
the soft term's gradients on the same scale whatever the temperature. Optionally the student's penultimate
features (the input of its output layer) are projected to the teacher's width and pulled towards the
teacher's with an MSE term; the projection is trained with the student and then dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from export.compress.structured import output_layer


class DistillConfig(BaseModel):
    """Teacher → student distillation.

    Attributes:
        architecture: the student's architecture (any of ``training.models``).
        config: the student's architecture options (narrower, fewer layers than the teacher).
        temperature: softens both distributions; higher shares more of the teacher's "dark knowledge".
        alpha: weight of the soft-target term; ``1 - alpha`` weighs the hard-label cross-entropy.
        feature_weight: weight of the intermediate-feature MSE term (0: off).
        mixup: Beta(mixup, mixup) mixing of each batch with a shuffled copy; the teacher labels the mixed
            inputs, so the student sees many more points of the teacher's function (0: off).
    """

    model_config = ConfigDict(extra="forbid")

    architecture: str = "mlp"
    config: dict[str, Any] = Field(default_factory=lambda: {"hidden": [32], "dropout": 0.0})
    temperature: float = Field(4.0, gt=0.0)
    alpha: float = Field(0.7, ge=0.0, le=1.0)
    feature_weight: float = Field(0.0, ge=0.0)
    mixup: float = Field(0.0, ge=0.0)


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
    teacher: nn.Module, cfg: DistillConfig, wrapper: StudentWithProjection | None = None
) -> tuple[Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor], Callable[[], None]]:
    """A ``loss_fn(model, x, y)`` for :func:`training.trainer.fit`, and a function releasing its hooks.

    The teacher runs in eval mode without gradients on the same (possibly noise-augmented) batch as the student.
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
        if cfg.mixup > 0:
            x = torch.cat([x, mix(x, cfg.mixup)])
        with torch.no_grad():
            teacher_logits = teacher(x)
        student_logits = model(x)
        loss = distillation_loss(student_logits[:n], teacher_logits[:n], y, cfg.temperature, cfg.alpha)
        if cfg.mixup > 0:  # mixed inputs have no hard label: soft targets only
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
    from training.models import build_model

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
) -> tuple[nn.Module, dict[str, Any]]:
    """Train a student on ``splits`` against ``teacher`` and return it with the trainer's result.

    Args:
        teacher: the trained model (left unchanged).
        splits: :class:`training.data.Splits` (classification) the teacher was trained on.
        cfg: student architecture and loss weights.
        training_cfg: :class:`training.recipe.TrainingConfig` (or its dict) for the student's training.
        student: a ready student (e.g. initialised elsewhere) instead of building one from ``cfg``.
        progress: show the trainer's progress bar.
    """
    from training.trainer import fit

    if splits.task != "classification":
        raise ValueError(f"distillation with soft targets needs a classification task, got {splits.task!r}")
    student = student or build_student(cfg, input_shape=splits.input_shape, num_outputs=splits.num_outputs)
    wrapper = None
    trained: nn.Module = student
    if cfg.feature_weight > 0:
        wrapper = StudentWithProjection(student, feature_width(student), feature_width(teacher))
        trained = wrapper
    loss_fn, close = make_loss_fn(teacher, cfg, wrapper)
    try:
        result = fit(trained, splits, training_cfg, loss_fn=loss_fn, progress=progress)
    finally:
        close()
    student.eval()
    result.pop("state", None)
    return student, result
