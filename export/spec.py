"""The recipe's ``export:`` section: which variants to publish, the pass steps of each, and the checks."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from modelpress.common.validation import first_error
from modelpress.export.errors import ExportError
from modelpress.export.passes import PASSES, build_pass
from modelpress.export.passes.base import ModelHandle, OnnxHandle, TorchHandle
from modelpress.serving.manifest import BatchingConfig, validate_model_name

# Built-in variants; a recipe may redefine them or add its own under ``steps``.
DEFAULT_STEPS: dict[str, list[dict[str, Any]]] = {
    "fp32": [{"pass": "onnx"}, {"pass": "optimize"}],
    "fp16": [{"pass": "onnx"}, {"pass": "optimize"}, {"pass": "fp16"}],
    "int8": [{"pass": "onnx"}, {"pass": "quantize", "mode": "auto"}],
}
BASE_VARIANT = "fp32"


class VerifySpec(BaseModel):
    """Thresholds every published variant is checked against (on held-out samples, with ONNX Runtime).

    Tensor models use the first four (accuracy and agreement); embedding models ``min_mean_cosine``.
    """

    model_config = ConfigDict(extra="forbid")

    samples: int = Field(512, ge=1, description="held-out samples compared with PyTorch")
    fp32_atol: float = Field(1e-4, gt=0.0, description="max |ORT - PyTorch| for fp32 variants (hard check)")
    min_agreement: float = Field(0.99, ge=0.0, le=1.0, description="top-1 agreement with PyTorch, compressed")
    max_accuracy_drop: float = Field(
        0.005, ge=0.0, le=1.0, description="test accuracy PyTorch − variant, as a fraction (0.005 = 0.5 points)"
    )
    min_mean_cosine: dict[str, float] = Field(
        default_factory=lambda: {"fp32": 0.9999, "fp16": 0.999, "int8": 0.98, "student": 0.8, "student-int8": 0.8},
        description="embedding models: variant -> the lowest held-out mean cosine to the fp32 teacher it may have",
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
    batching: BatchingConfig | None = Field(
        None, description="each variant's own dynamic batching (Triton's dynamic_batching), in its manifest"
    )

    @model_validator(mode="after")
    def _known(self, info: ValidationInfo) -> ExportSpec:
        if not self.variants:
            raise ValueError("variants: list at least one variant")
        if len(set(self.variants)) != len(self.variants):
            raise ValueError(f"variants: {self.variants} lists a variant twice")
        start = (info.context or {}).get("start", TorchHandle)
        for variant in self.variants:
            problem = chain_problem(self.steps_for(variant), start)
            if problem:
                raise ValueError(f"steps.{variant}: {problem}")
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


def chain_problem(steps: list[dict[str, Any]], start: type[ModelHandle]) -> str | None:
    """Why ``steps`` cannot run from a ``start`` handle (a pass given a handle it does not take), or None.

    Every pass declares the handles it takes and the one it returns, so a chain is checked before anything runs.
    """
    current = start
    for number, step in enumerate(steps, 1):
        cls = PASSES.get(step.get("pass"))
        if cls is None:
            return None  # build_pass names the unknown pass
        if not cls.takes(current):
            wanted = " or ".join(t.kind for t in cls.accepts)
            return f"step {number} ({cls.name}) takes {wanted}, the chain holds {current.kind} there{_hint(start)}"
        current = cls.output_type(current)
    if not issubclass(current, OnnxHandle):
        return f"the steps end with {current.kind}, not an ONNX model{_hint(start)}"
    return None


def _hint(start: type[ModelHandle]) -> str:
    if not issubclass(start, TorchHandle):
        return ""
    torch_passes = ", ".join(n for n, cls in PASSES.items() if cls.produces is TorchHandle and cls.takes(start))
    return f": the first step must be {{pass: onnx}} (after any of {torch_passes})"


def parse_spec(
    raw: dict[str, Any] | None, *, variants: list[str] | None = None, start: type[ModelHandle] = TorchHandle
) -> ExportSpec:
    """Validate an ``export:`` section (``variants`` overrides its list); every pass config is checked too.

    ``start`` is the handle type the chains begin with (a trained module, a pretrained encoder, an ONNX file).

    Raises:
        ExportError: naming the unknown key, variant or invalid value.
    """
    raw = dict(raw or {})
    if variants is not None:
        raw["variants"] = variants
    try:
        spec = ExportSpec.model_validate(raw, context={"start": start})
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
