"""The one registry of export passes: a recipe step ``{pass: <name>, ...config}`` names one of these."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from modelpress.common.validation import first_error
from modelpress.export.errors import ExportError
from modelpress.export.passes.base import Pass, PassConfig, PassContext, PassOutput
from modelpress.export.passes.compress import COMPRESSION_PASSES
from modelpress.export.passes.distill_encoder import DistillEncoder
from modelpress.export.passes.fp16 import Float16
from modelpress.export.passes.fuse_transformer import FuseTransformer
from modelpress.export.passes.optimize import OrtOptimize
from modelpress.export.passes.quantize import Quantize
from modelpress.export.passes.quantize_smooth import QuantizeSmooth
from modelpress.export.passes.to_onnx import OnnxExport

_ALL: tuple[type[Pass], ...] = (
    *COMPRESSION_PASSES, DistillEncoder, OnnxExport, OrtOptimize, FuseTransformer, Float16, Quantize, QuantizeSmooth,
)  # fmt: skip
PASSES: dict[str, type[Pass]] = {cls.name: cls for cls in _ALL}


def build_pass(step: dict[str, Any]) -> Pass:
    """Build a pass from a recipe step ``{"pass": name, **config}``, validating its config.

    Raises:
        ExportError: no ``pass`` key, an unknown pass, or a config the pass rejects (naming the key).
    """
    step = dict(step)
    name = step.pop("pass", None)
    if name not in PASSES:
        known = ", ".join(PASSES)
        raise ExportError(f"unknown export pass {name!r}; expected one of {known}" if name else
                          f"export step {step} has no 'pass' key (one of {known})")  # fmt: skip
    cls = PASSES[name]
    try:
        return cls(cls.config_class.model_validate(step))
    except ValidationError as e:
        first = first_error(e)
        where = f"{first.where}: " if first.where else ""
        raise ExportError(f"export pass {name!r}: {where}{first.plain}") from e


__all__ = ["PASSES", "Pass", "PassConfig", "PassContext", "PassOutput", "build_pass"]
