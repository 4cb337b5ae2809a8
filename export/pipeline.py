"""``modelpress pipeline``: train a recipe, then publish every export variant its ``export:`` section lists."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from modelpress.export.api import export_checkpoint
from modelpress.export.errors import ExportError
from modelpress.export.repository import Published, check_repository
from modelpress.export.spec import parse_spec, variant_model_name
from modelpress.serving.store import RepositoryStore


def run_pipeline(
    recipe_path: Path,
    repository: str | Path | RepositoryStore,
    *,
    workdir: Path,
    overrides: list[str] | tuple[str, ...] = (),
    force: bool = False,
    progress: bool = True,
) -> tuple[Path, list[Published]]:
    """Train ``recipe_path`` into ``workdir`` and export the checkpoint; return it and what was published.

    Everything that can be checked before training is (recipe, export section, names, repository), so bad
    input fails in a second, not after the training run.

    Raises:
        modelpress.training.recipe.RecipeError, modelpress.training.data.DataError,
        modelpress.training.api.TrainingError, ExportError.
    """
    from modelpress.export.text.dispatch import is_text_recipe

    if is_text_recipe(recipe_path):  # a pretrained Hugging Face model (model.source: hf): nothing to train
        from modelpress.export.text.pipeline import run_text_pipeline

        return run_text_pipeline(recipe_path, repository, workdir=workdir, overrides=overrides, force=force,
                                 progress=progress)  # fmt: skip
    from modelpress.training.api import train_recipe
    from modelpress.training.recipe import load_recipe

    recipe = load_recipe(recipe_path, list(overrides))
    spec = parse_spec(recipe.export)
    name = spec.name or recipe.name
    for variant in spec.variants:
        variant_model_name(name, variant)
    check_repository(repository)
    if Path(workdir).exists() and not Path(workdir).is_dir():
        raise ExportError(f"--workdir {workdir} is a file, expected a folder")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    checkpoint = train_recipe(recipe, Path(workdir) / f"{name}-{stamp}", progress=progress)
    return checkpoint, export_checkpoint(checkpoint, repository, name, spec=spec, force=force, progress=progress)
