"""Where a pipeline's model comes from: the recipe's ``model.source`` names one of :data:`SOURCES`.

``train`` (the default): the recipe's data, architecture and training make a checkpoint, whose module starts
the chain. ``hf``: a pretrained Hugging Face text encoder starts it (nothing to train). Each source validates
its recipe and checks what it can before anything runs, then builds a :class:`~modelpress.export.chain.ChainStart`;
the passes, verification and publishing after it are the same for every source. An importer (an ONNX file
from another producer, a ``torch.export`` program) is one more entry here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from modelpress.export.chain import ChainStart
from modelpress.export.errors import ExportError
from modelpress.export.passes.base import EncoderHandle, TorchHandle
from modelpress.export.spec import ExportSpec, parse_spec, variant_model_name


@dataclass(frozen=True)
class StartedChain:
    """A chain's start and, for a recipe that trains, the checkpoint it wrote."""

    start: ChainStart
    checkpoint: Path | None = None


@dataclass(frozen=True)
class PreparedRecipe:
    """A validated recipe: the model name, its export spec, and how to build its start (the slow part)."""

    name: str
    spec: ExportSpec
    begin: Callable[[Path, bool], StartedChain]  # (workdir, progress) -> the start

    def start(self, workdir: Path, *, progress: bool = True) -> StartedChain:
        return self.begin(workdir, progress)


def _prepare_training(raw: dict[str, Any], overrides: list[str], path: Path) -> PreparedRecipe:
    from modelpress.training.recipe import recipe_from_dict

    # model.source picked this source; the training recipe itself has no such key
    model = raw.get("model")
    if isinstance(model, dict) and "source" in model:
        raw = {**raw, "model": {k: v for k, v in model.items() if k != "source"}}
    overrides = [item for item in overrides if item.partition("=")[0].strip() != "model.source"]
    recipe = recipe_from_dict(raw, overrides, source=str(path))
    spec = parse_spec(recipe.export, start=TorchHandle)
    name = spec.name or recipe.name

    def begin(workdir: Path, progress: bool) -> StartedChain:
        from modelpress.export.api import checkpoint_start
        from modelpress.training.api import train_recipe

        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        checkpoint = train_recipe(recipe, workdir / f"{name}-{stamp}", progress=progress)
        return StartedChain(checkpoint_start(checkpoint, spec, progress=progress), checkpoint)

    return PreparedRecipe(name, spec, begin)


def _prepare_pretrained(raw: dict[str, Any], overrides: list[str], path: Path) -> PreparedRecipe:
    from pydantic import ValidationError

    from modelpress.common.validation import first_error
    from modelpress.export.text.start import PretrainedRecipe, check_pretrained, encoder_start

    raw = _with_overrides(raw, overrides)
    _refuse_old_text_dialect(raw, path)
    try:
        recipe = PretrainedRecipe.model_validate(raw)
    except ValidationError as e:
        first = first_error(e)
        raise ExportError(f"recipe {path}: '{first.where}': {first.message}") from e
    spec = parse_spec(recipe.export, start=EncoderHandle)
    name = spec.name or recipe.name
    check_pretrained(recipe)  # a missing model or corpus fails before any folder is created

    def begin(workdir: Path, progress: bool) -> StartedChain:
        return StartedChain(encoder_start(recipe, spec, progress=progress))

    return PreparedRecipe(name, spec, begin)


# The keys of the text pipeline's own recipe dialect (before issue 15), now pass steps under export.steps.
_OLD_TEXT_KEYS = {"distill": "a {pass: distill-encoder} step", "int8": "a {pass: quantize-smooth} step",
                  "student_int8": "the student-int8 chain's quantize-smooth step", "opset": "the onnx step's opset",
                  "exporter": "the onnx step's exporter", "optimize": "a {pass: fuse-transformer} step",
                  "min_mean_cosine": "export.verify.min_mean_cosine"}  # fmt: skip


def _refuse_old_text_dialect(raw: dict[str, Any], path: Path) -> None:
    export = raw.get("export") if isinstance(raw.get("export"), dict) else {}
    old = [("distill", "distill")] if "distill" in raw else []
    old += [(f"export.{key}", key) for key in export if key in _OLD_TEXT_KEYS and key != "distill"]
    if old:
        where, key = old[0]
        raise ExportError(
            f"recipe {path}: '{where}' is the old text recipe's; every variant is now a list of passes under "
            f"export.steps: write it as {_OLD_TEXT_KEYS[key]} (recipes/minilm.yaml, docs/export.md)"
        )


SOURCES: dict[str, Callable[[dict[str, Any], list[str], Path], PreparedRecipe]] = {
    "train": _prepare_training,
    "hf": _prepare_pretrained,
}


def _with_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    from modelpress.training.recipe import apply_override

    raw = copy.deepcopy(raw)
    for item in overrides:
        apply_override(raw, item)
    return raw


def prepare_recipe(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> PreparedRecipe:
    """Read a recipe, pick its source (``model.source``, default ``train``), validate it and its export section.

    Everything that can be checked before the slow part is (recipe keys, pass configs, chains, names, the
    model and data it names), so bad input fails in a second.

    Raises:
        RecipeError, ExportError and the sources' own bad-input errors, each naming the problem.
    """
    from modelpress.training.recipe import read_recipe_yaml

    raw = read_recipe_yaml(path)
    model = _with_overrides(raw, list(overrides)).get("model")
    source = model.get("source", "train") if isinstance(model, dict) else "train"
    if source not in SOURCES:
        raise ExportError(f"recipe {path}: model.source {source!r}: expected one of {', '.join(SOURCES)}")
    prepared = SOURCES[source](raw, list(overrides), Path(path))
    for variant in prepared.spec.variants:
        variant_model_name(prepared.name, variant)
    return prepared
