"""``modelpress pipeline``: a recipe in, every export variant it lists verified and published, for any model.

The recipe's source makes the chain's start (train a checkpoint, or load a pretrained encoder); the same pass
chain, verification and all-or-nothing publishing follow for every family.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from modelpress.export.api import publish_with_progress, run_chain
from modelpress.export.chain import BuiltVariant
from modelpress.export.errors import ExportError
from modelpress.export.repository import Published, check_repository
from modelpress.export.sources import prepare_recipe
from modelpress.serving.store import RepositoryStore


@dataclass(frozen=True)
class PipelineResult:
    """What a pipeline run made.

    Attributes:
        checkpoint: the trained checkpoint (None for a pretrained model: nothing was trained).
        published: the versions published, one per variant.
        kept: folders worth keeping from the passes, by the first variant that made them, moved under the
            work dir as ``<name>-<variant>`` (e.g. a distilled student a later recipe can reuse).
    """

    checkpoint: Path | None
    published: list[Published]
    kept: dict[str, Path] = field(default_factory=dict)


def run_pipeline(
    recipe_path: Path,
    repository: str | Path | RepositoryStore,
    *,
    workdir: Path,
    overrides: list[str] | tuple[str, ...] = (),
    force: bool = False,
    progress: bool = True,
    version: int | None = None,
) -> PipelineResult:
    """Make the recipe's starting model into ``workdir``, run its export variants and publish them (all or none).

    Everything that can be checked before the slow part is (recipe, export section, names, repository, the
    model and data it names), so bad input fails in a second and creates nothing.

    Raises:
        modelpress.common.errors.UserError: any bad input or refused variant, naming the problem.
    """
    prepared = prepare_recipe(Path(recipe_path), overrides)
    check_repository(repository)
    workdir = Path(workdir)
    if workdir.exists() and not workdir.is_dir():
        raise ExportError(f"--workdir {workdir} is a file, expected a folder")
    workdir.mkdir(parents=True, exist_ok=True)
    started = prepared.start(workdir, progress=progress)
    with _work_dir(workdir) as work:
        built = run_chain(started.start, prepared.spec, prepared.name, work, force=force, progress=progress)
        published = publish_with_progress(repository, built, version=version, progress=progress)
        kept = _keep(built, prepared.name, workdir)
    return PipelineResult(started.checkpoint, published, kept)


def _keep(built: list[BuiltVariant], name: str, workdir: Path) -> dict[str, Path]:
    """Move each folder a pass asked to keep to ``workdir/<name>-<variant>`` (replacing an earlier run's)."""
    kept: dict[str, Path] = {}
    moved: set[Path] = set()
    for item in built:
        for folder in item.kept:
            if folder in moved:
                continue
            target = workdir / f"{name}-{item.variant}"
            if target.exists():
                shutil.rmtree(target)
            shutil.move(str(folder), str(target))
            moved.add(folder)
            kept[item.variant] = target
    return kept


@contextlib.contextmanager
def _work_dir(workdir: Path) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="modelpress-export-", dir=workdir) as tmp:
        yield Path(tmp)
