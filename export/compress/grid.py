"""The search space of ``modelpress search``: which compressed variants to try, as export pass chains."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from modelpress.common.validation import first_error
from modelpress.export.errors import ExportError

# fp16w: fp16 storage, fp32 compute (half the bytes, fp32's latency; see the fp16 pass's weights_only)
Precision = Literal["fp32", "fp16", "fp16w", "int8"]

# The ONNX-side steps that give each precision, after the PyTorch-level ones.
PRECISION_STEPS: dict[str, list[dict[str, Any]]] = {
    "fp32": [{"pass": "onnx"}, {"pass": "optimize"}],
    "fp16": [{"pass": "onnx"}, {"pass": "optimize"}, {"pass": "fp16"}],
    "fp16w": [{"pass": "onnx"}, {"pass": "optimize"}, {"pass": "fp16", "weights_only": True}],
    "int8": [{"pass": "onnx"}, {"pass": "quantize", "mode": "auto"}],
}


class SearchGrid(BaseModel):
    """A small grid: every PyTorch-level transform below, each exported at every precision.

    Attributes:
        sparsities: unstructured global magnitude sparsities (each one pruned iteratively from 50 %).
        channel_ratios: structured pruning ratios (channels/neurons removed per layer).
        student_widths: hidden widths of distilled students (one entry per student, e.g. ``[32]``).
        student_architecture: the students' architecture; widths fill its ``hidden`` option.
        student_config: other options of the student architecture.
        precisions: ONNX precisions each transform is exported at.
        include_original: also export the unmodified checkpoint at each precision (besides the fp32 baseline).
        finetune_epochs: fine-tuning epochs after each pruning step.
        distill_epochs: training epochs of each student.
        temperature: distillation temperature.
        alpha: weight of the soft targets (``1 - alpha``: the hard labels).
        mixup: Beta concentration of the mixed inputs the teacher labels (0: off).
    """

    model_config = ConfigDict(extra="forbid")

    sparsities: list[float] = Field(default_factory=lambda: [0.75, 0.9])
    channel_ratios: list[float] = Field(default_factory=lambda: [0.5])
    student_widths: list[list[int]] = Field(default_factory=lambda: [[32], [64]])
    student_architecture: str = "mlp"
    student_config: dict[str, Any] = Field(default_factory=lambda: {"dropout": 0.0})
    precisions: list[Precision] = Field(default_factory=lambda: ["fp32", "int8"])
    include_original: bool = True
    finetune_epochs: int = Field(3, ge=0)
    distill_epochs: int = Field(100, ge=1)
    # What worked on digits (docs/benchmarks.md): a mild temperature, some weight on the hard labels, mixup.
    temperature: float = Field(2.0, gt=0.0)
    alpha: float = Field(0.7, ge=0.0, le=1.0)
    mixup: float = Field(0.4, ge=0.0)

    @field_validator("sparsities", "channel_ratios")
    @classmethod
    def _fractions(cls, values: list[float]) -> list[float]:
        if any(not 0.0 < v < 1.0 for v in values):
            raise ValueError(f"values must lie strictly between 0 and 1, got {values}")
        return values

    @field_validator("student_widths")
    @classmethod
    def _widths(cls, values: list[list[int]]) -> list[list[int]]:
        if any(not w or any(h < 1 for h in w) for w in values):
            raise ValueError(f"each student width is a non-empty list of positive sizes, got {values}")
        return values

    @field_validator("precisions")
    @classmethod
    def _some_precision(cls, values: list[str]) -> list[str]:
        if not values:
            raise ValueError("list at least one precision")
        return values

    def transforms(self) -> list[tuple[str, list[dict[str, Any]]]]:
        """``(label, PyTorch-level steps)`` of every transform; the label names the candidate."""
        items: list[tuple[str, list[dict[str, Any]]]] = []
        if self.include_original:
            items.append(("original", []))
        for s in self.sparsities:
            steps = [x for x in (0.5, 0.75) if x < s]
            step = {"pass": "prune", "sparsity": s, "steps": steps, "finetune_epochs": self.finetune_epochs}
            items.append((f"sparse{round(100 * s)}", [step]))
        for r in self.channel_ratios:
            step = {"pass": "prune-structured", "ratio": r, "iterative_steps": 2,
                    "finetune_epochs": self.finetune_epochs}  # fmt: skip
            items.append((f"slim{round(100 * r)}", [step]))
        for width in self.student_widths:
            step = {"pass": "distill", "architecture": self.student_architecture,
                    "config": {**self.student_config, "hidden": width}, "epochs": self.distill_epochs,
                    "temperature": self.temperature, "alpha": self.alpha, "mixup": self.mixup}  # fmt: skip
            items.append((f"student{'x'.join(map(str, width))}", [step]))
        return items

    def candidates(self) -> list[tuple[str, list[dict[str, Any]]]]:
        """``(name, full export steps)`` of every candidate: each transform at each precision."""
        out = []
        for label, torch_steps in self.transforms():
            for precision in self.precisions:
                if label == "original" and precision == "fp32":
                    continue  # that is the baseline, measured separately
                out.append((f"{label}-{precision}", [*torch_steps, *PRECISION_STEPS[precision]]))
        return out


def load_grid(path: Path | None, overrides: dict[str, Any]) -> SearchGrid:
    """The grid from a YAML file (or the defaults), with the CLI's options on top; ExportError on bad input."""
    import yaml

    raw: dict[str, Any] = {}
    if path is not None:
        if not Path(path).is_file():
            raise ExportError(f"grid file {path} does not exist")
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except yaml.YAMLError as e:
            raise ExportError(f"grid file {path} is not valid YAML: {str(e).splitlines()[0]}") from e
        if not isinstance(raw, dict):
            raise ExportError(f"grid file {path} must be a mapping")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return SearchGrid.model_validate(raw)
    except ValidationError as e:
        first = first_error(e)
        raise ExportError(f"search grid: {first.where}: {first.plain}") from e
