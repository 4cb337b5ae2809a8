"""The compression algorithms' settings, importable without torch (the export pass registry derives from them)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class DistillConfig(BaseModel):
    """Teacher → student distillation.

    Attributes:
        architecture: the student's architecture (any of ``modelpress.training.models``).
        config: the student's architecture options (narrower, fewer layers than the teacher).
        temperature: softens both distributions; higher shares more of the teacher's "dark knowledge".
        alpha: weight of the soft-target term; ``1 - alpha`` weighs the hard-label cross-entropy.
        feature_weight: weight of the intermediate-feature MSE term (0: off).
        mixup: Beta(mixup, mixup) mixing of each batch with a shuffled copy; the teacher labels the mixed
            inputs, so the student sees many more points of the teacher's function (0: off).
        shift: random translation of image inputs by up to this many pixels (0: off); with ``rotate`` and
            ``scale`` a small random affine transform of each image, which the teacher labels on the fly.
        rotate: random rotation of image inputs by up to this many degrees either way.
        scale: random zoom of image inputs by a factor within ``1 ± scale``.
    """

    model_config = ConfigDict(extra="forbid")

    architecture: str = "mlp"
    config: dict[str, Any] = Field(default_factory=lambda: {"hidden": [32], "dropout": 0.0})
    temperature: float = Field(4.0, gt=0.0)
    alpha: float = Field(0.7, ge=0.0, le=1.0)
    feature_weight: float = Field(0.0, ge=0.0)
    mixup: float = Field(0.0, ge=0.0)
    shift: float = Field(0.0, ge=0.0)
    rotate: float = Field(0.0, ge=0.0, le=45.0)
    scale: float = Field(0.0, ge=0.0, lt=0.5)

    @property
    def augments(self) -> bool:
        return bool(self.shift or self.rotate or self.scale)


class UnstructuredConfig(BaseModel):
    """Global magnitude pruning.

    Attributes:
        sparsity: the final fraction of prunable weights set to zero.
        steps: intermediate sparsities reached first, ascending and below ``sparsity`` (e.g. [0.5, 0.75]
            before 0.9); empty prunes in one shot.
        finetune_epochs: epochs of fine-tuning after each step (0: none).
        include_bias: prune biases too (usually not worth it: they are few and matter).
    """

    model_config = ConfigDict(extra="forbid")

    sparsity: float = Field(0.9, gt=0.0, lt=1.0)
    steps: list[float] = Field(default_factory=lambda: [0.5, 0.75])
    finetune_epochs: int = Field(3, ge=0)
    include_bias: bool = False

    @field_validator("steps")
    @classmethod
    def _ascending(cls, steps: list[float]) -> list[float]:
        if any(not 0.0 < s < 1.0 for s in steps):
            raise ValueError(f"steps must lie strictly between 0 and 1, got {steps}")
        if steps != sorted(set(steps)):
            raise ValueError(f"steps must be strictly ascending, got {steps}")
        return steps

    def schedule(self) -> list[float]:
        """The sparsity reached at each step, ending at ``sparsity``."""
        return [s for s in self.steps if s < self.sparsity] + [self.sparsity]


class StructuredConfig(BaseModel):
    """Channel/neuron pruning.

    Attributes:
        ratio: fraction of channels/neurons removed from each prunable layer (uniform), or in total
            (``global_ranking``), at the end (0: none, e.g. to remove only heads).
        heads: fraction of the attention heads removed from every attention block, least important first
            (0: none); at least one head stays.
        iterative_steps: reach ``ratio`` in this many equal steps, fine-tuning after each.
        importance: ``l1``/``l2`` norm of each channel's weights across the coupled group, or ``bn`` (the
            batch-norm scale; models without batch norm fall back to l2).
        global_ranking: rank channels across layers (layers that matter less lose more) instead of pruning
            every layer by the same ratio.
        max_layer_ratio: no layer loses more than this fraction (keeps global ranking from emptying one).
        round_to: keep channel counts multiples of this (vectorised kernels prefer it); ``None`` keeps any count.
        finetune_epochs: epochs of fine-tuning after each step (0: none).
    """

    model_config = ConfigDict(extra="forbid")

    ratio: float = Field(0.5, ge=0.0, lt=1.0)
    heads: float = Field(0.0, ge=0.0, lt=1.0)
    iterative_steps: int = Field(1, ge=1, le=20)
    importance: Literal["l1", "l2", "bn"] = "l2"
    global_ranking: bool = False
    max_layer_ratio: float = Field(0.9, gt=0.0, lt=1.0)
    round_to: int | None = Field(None, ge=1)
    finetune_epochs: int = Field(3, ge=0)
