"""The recipe's ``export:`` section: which variants to publish, the pass steps of each, and the checks."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modelpress.common.validation import first_error
from modelpress.export.errors import ExportError
from modelpress.export.passes import PASSES, build_pass
from modelpress.serving.manifest import validate_model_name

# Built-in variants; a recipe may redefine them or add its own under ``steps``.
DEFAULT_STEPS: dict[str, list[dict[str, Any]]] = {
    "fp32": [{"pass": "onnx"}, {"pass": "optimize"}],
    "fp16": [{"pass": "onnx"}, {"pass": "optimize"}, {"pass": "fp16"}],
    "int8": [{"pass": "onnx"}, {"pass": "quantize", "mode": "auto"}],
}
BASE_VARIANT = "fp32"


class VerifySpec(BaseModel):
    """Thresholds every published variant is checked against (on held-out samples, with ONNX Runtime)."""

    model_config = ConfigDict(extra="forbid")

    samples: int = Field(512, ge=1, description="held-out samples compared with PyTorch")
    fp32_atol: float = Field(1e-4, gt=0.0, description="max |ORT - PyTorch| for fp32 variants (hard check)")
    min_agreement: float = Field(0.99, ge=0.0, le=1.0, description="top-1 agreement with PyTorch, compressed")
    max_accuracy_drop: float = Field(
        0.005, ge=0.0, le=1.0, description="test accuracy PyTorch − variant, as a fraction (0.005 = 0.5 points)"
    )


class ExportSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="model name in the repository (default: the recipe's name)")
    variants: list[str] = Field(default_factory=lambda: ["fp32", "fp16", "int8"])
    steps: dict[str, list[dict[str, Any]]] = Field(default_factory=dict, description="variant -> pass steps")
    verify: VerifySpec = Field(default_factory=VerifySpec)
    version_policy: str | None = Field(
        None, description="versions servers load of each variant (latest:N, all, specific:V1,V2), in its manifest"
    )

    @model_validator(mode="after")
    def _known(self) -> ExportSpec:
        if not self.variants:
            raise ValueError("variants: list at least one variant")
        if len(set(self.variants)) != len(self.variants):
            raise ValueError(f"variants: {self.variants} lists a variant twice")
        for variant in self.variants:
            steps = self.steps_for(variant)
            # PyTorch-level passes (distill, prune) come first, then onnx, then the passes on the ONNX model.
            stages = [getattr(PASSES.get(step.get("pass")), "stage", "onnx") for step in steps]
            n_torch = next((i for i, stage in enumerate(stages) if stage != "torch"), len(steps))
            if n_torch == len(steps) or steps[n_torch].get("pass") != "onnx" or "torch" in stages[n_torch:]:
                torch_passes = ", ".join(n for n, cls in PASSES.items() if cls.stage == "torch")
                message = f"the first step must be {{pass: onnx}} (after any of {torch_passes})"
                raise ValueError(f"steps.{variant}: {message}")
        return self

    @field_validator("version_policy")
    @classmethod
    def _policy_valid(cls, value: str | None) -> str | None:
        from modelpress.serving.version_policy import VersionPolicy

        return None if value is None else str(VersionPolicy.parse(value))

    def steps_for(self, variant: str) -> list[dict[str, Any]]:
        if variant in self.steps:
            return self.steps[variant]
        if variant in DEFAULT_STEPS:
            return DEFAULT_STEPS[variant]
        known = sorted(set(DEFAULT_STEPS) | set(self.steps))
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(known)}")


def parse_spec(raw: dict[str, Any] | None, *, variants: list[str] | None = None) -> ExportSpec:
    """Validate an ``export:`` section (``variants`` overrides its list); every pass config is checked too.

    Raises:
        ExportError: naming the unknown key, variant or invalid value.
    """
    raw = dict(raw or {})
    if variants is not None:
        raw["variants"] = variants
    try:
        spec = ExportSpec.model_validate(raw)
    except ValidationError as e:
        first = first_error(e)
        raise ExportError(f"export{'.' + first.where if first.where else ''}: {first.plain}") from e
    for variant in spec.variants:
        for step in spec.steps_for(variant):
            build_pass(step)
    return spec


def variant_model_name(base: str, variant: str) -> str:
    """``digits`` for the fp32 variant, ``digits-int8`` for the others; both must be valid model names."""
    name = base if variant == BASE_VARIANT else f"{base}-{variant}"
    try:
        return validate_model_name(name)
    except ValueError as e:
        raise ExportError(str(e)) from e
