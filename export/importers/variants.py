"""The variants an import can publish: the export's built-in steps, starting from the imported ONNX graph."""

from __future__ import annotations

from typing import Any

from modelpress.export.errors import ExportError
from modelpress.export.spec import BASE_VARIANT, DEFAULT_STEPS

# Beyond the export's variants: the int8 mode named, so a user without calibration data can ask for dynamic.
EXTRA_STEPS: dict[str, list[dict[str, Any]]] = {
    "int8-static": [{"pass": "quantize", "mode": "static"}],
    "int8-dynamic": [{"pass": "quantize", "mode": "dynamic"}],
}
DEFAULT_VARIANTS = ("fp32", "fp16", "int8")


def import_steps(variant: str) -> list[dict[str, Any]]:
    """The pass steps of ``variant`` after the import (the export's steps without its onnx step).

    Raises:
        ExportError: an unknown variant, naming the known ones.
    """
    if variant in EXTRA_STEPS:
        return EXTRA_STEPS[variant]
    if variant in DEFAULT_STEPS:
        return [step for step in DEFAULT_STEPS[variant] if step["pass"] != "onnx"] or [{"pass": "optimize"}]
    known = ", ".join([*DEFAULT_STEPS, *EXTRA_STEPS])
    raise ExportError(f"unknown variant {variant!r}; expected one of {known}")


def quantizes_statically(steps: list[dict[str, Any]], graph_ops: set[str]) -> bool:
    """True when ``steps`` quantize statically: asked for, or ``auto`` on a graph with convolutions."""
    for step in steps:
        if step["pass"] == "quantize":
            mode = step.get("mode", "auto")
            return mode == "static" or (mode == "auto" and bool(graph_ops & {"Conv", "ConvTranspose"}))
    return False


__all__ = ["BASE_VARIANT", "DEFAULT_VARIANTS", "import_steps", "quantizes_statically"]
