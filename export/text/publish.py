"""Publishing text variants through the export stage's atomic publisher, with the tokenizer in each version."""

from __future__ import annotations

import functools
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from modelpress.export.repository import Published, StagedVersion, commit_all
from modelpress.serving.manifest import ModelManifest
from modelpress.serving.store import RepositoryStore


class _StagedTextVersion(StagedVersion):
    """A staged version that also carries the tokenizer file (hashed into the manifest with the model)."""

    def __init__(self, repository: Path, manifest: ModelManifest, model_path: Path, extra_files: list[Path]):
        self._extra_files = extra_files
        super().__init__(repository, manifest, model_path)

    def _write_manifest(self) -> None:
        for path in self._extra_files:  # before the manifest lists and hashes the folder's files
            shutil.copy2(path, self.path / path.name)
        super()._write_manifest()


@dataclass
class BuiltTextVariant:
    """A verified text variant waiting to be published: manifest, model and files that travel with it."""

    variant: str
    manifest: ModelManifest
    model_path: Path
    extra_files: list[Path] = field(default_factory=list)


def publish_text_variants(
    repository: str | Path | RepositoryStore, built: list[BuiltTextVariant], *, version: int | None = None
) -> list[Published]:
    """Stage and verify every variant, then commit them all; on any failure none of this run stays published."""
    stages = [
        functools.partial(
            _StagedTextVersion, manifest=item.manifest, model_path=item.model_path, extra_files=item.extra_files
        )
        for item in built
    ]
    return commit_all(repository, stages, version=version)
