"""One chain for every model family: a starting handle, the passes of each variant, verify, publish.

A :class:`ChainStart` is what a family (or an importer) brings: the first model handle, the lineage record that
says where it came from, the serving contract every variant inherits, and the pass context (data and quality
strategy). :func:`build_variants` runs each variant's steps from it (sharing the outputs of a step prefix that
variants have in common), measures and judges each result with the context's quality strategy, and builds its
manifest; :func:`publish_all` publishes them all or none.
"""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelpress.export.errors import ExportError
from modelpress.export.manifest_builder import ServingContract, build_manifest
from modelpress.export.passes import PassContext, build_pass
from modelpress.export.passes.base import ModelHandle, OnnxHandle, PassOutput
from modelpress.export.repository import Published, StagedVersion, commit_all
from modelpress.export.spec import ExportSpec
from modelpress.serving.manifest import ModelManifest, PassRecord
from modelpress.serving.store import RepositoryStore


@dataclass
class ChainStart:
    """Where every variant's chain begins.

    Attributes:
        handle: the starting model (a trained module, a pretrained encoder, an imported ONNX file).
        record: the first lineage entry, e.g. ``train`` (a recipe's training run) or ``import``.
        contract: what every published variant declares (task, served tensors, files that travel along).
        context: the data and quality strategy the passes and the verification use.
    """

    handle: ModelHandle
    record: PassRecord
    contract: ServingContract
    context: PassContext


@dataclass(frozen=True)
class ChainStep:
    """One pass run: its output and its lineage record (shared by every variant with the same step prefix)."""

    output: PassOutput
    record: PassRecord


@dataclass(frozen=True)
class ChainResult:
    """A variant's final model, its overall precision, its lineage and the folders worth keeping."""

    model: OnnxHandle
    precision: str
    lineage: list[PassRecord]
    kept: list[Path]


@dataclass
class BuiltVariant:
    """A verified variant waiting to be published, with the files that travel with its model."""

    variant: str
    manifest: ModelManifest
    model_path: Path
    warnings: list[str] = field(default_factory=list)
    extra_files: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)


@dataclass
class Chain:
    """Runs pass steps from a start, reusing the output of a step prefix another variant already ran."""

    work: Path
    start: ChainStart
    cache: dict[tuple[str, ...], ChainStep] = field(default_factory=dict)

    def run(self, steps: list[dict[str, Any]], on_step: Callable[[str], None] | None = None) -> ChainResult:
        """Run ``steps`` from the start handle; the result must be an ONNX model.

        Raises:
            ExportError: a pass got a handle it does not take, or the chain does not end with an ONNX model.
        """
        model = self.start.handle
        precisions: list[str] = []
        records: list[PassRecord] = []
        kept: list[Path] = []
        key: tuple[str, ...] = ()
        for step in steps:
            pass_ = build_pass(step)
            key = (*key, PassRecord(name=pass_.name, config=pass_.config.model_dump(mode="json")).config_hash())
            if key not in self.cache:
                if on_step:
                    on_step(pass_.name)
                self.cache[key] = self._run_one(pass_, model, len(self.cache))
            done = self.cache[key]
            model = done.output.model
            records.append(done.record)
            if done.output.precision:
                precisions.append(done.output.precision)
            if done.output.keep is not None:
                kept.append(done.output.keep)
        if not isinstance(model, OnnxHandle):
            raise ExportError(f"an export variant must end with an ONNX model, its steps leave {model.kind}")
        return ChainResult(model, _overall_precision(precisions), records, kept)

    def _run_one(self, pass_: Any, model: ModelHandle, index: int) -> ChainStep:
        record = PassRecord(name=pass_.name, config=pass_.config.model_dump(mode="json"))
        out_dir = self.work / f"{index:02d}-{pass_.name}"
        started = time.perf_counter()
        output = pass_.run(model, out_dir, self.start.context)
        record.seconds = round(time.perf_counter() - started, 3)
        record.details = output.details  # PassRecord allows extra fields: what the pass decided
        return ChainStep(output, record)


def _overall_precision(precisions: list[str]) -> str:
    kinds = set(precisions)
    if not kinds:
        return "fp32"
    return kinds.pop() if len(kinds) == 1 else "mixed"


def build_variant(
    variant: str, model_name: str, family: str, spec: ExportSpec, chain: Chain, *, force: bool, on_step: Any
) -> BuiltVariant:
    """Run one variant's steps, measure and judge it with the start's quality strategy, build its manifest."""
    start = chain.start
    result = chain.run(spec.steps_for(variant), on_step)
    on_step("verify")
    strategy = start.context.quality
    quality = strategy.measure(result.model)
    warnings = strategy.judge(model_name, variant, result.precision, quality, force=force)
    if warnings:
        quality["forced"] = warnings
    manifest = build_manifest(
        name=model_name, family=family, variant=variant, model=result.model, precision=result.precision,
        lineage=[start.record, *result.lineage], quality=quality, contract=start.contract,
    )  # fmt: skip
    serving = {"version_policy": spec.version_policy, "batching": spec.batching}  # how servers pick and batch it
    manifest = manifest.model_copy(update={k: v for k, v in serving.items() if v is not None})
    return BuiltVariant(variant, manifest, result.model.path, warnings, list(start.contract.extra_files), result.kept)


class _StagedWithFiles(StagedVersion):
    """A staged version that also carries the files travelling with the model (e.g. the tokenizer)."""

    def __init__(self, repository: Path, manifest: ModelManifest, model_path: Path, extra_files: list[Path]):
        self._extra_files = extra_files
        super().__init__(repository, manifest, model_path)

    def _write_manifest(self) -> None:
        for path in self._extra_files:  # before the manifest lists and hashes the folder's files
            shutil.copy2(path, self.path / path.name)
        super()._write_manifest()


def publish_all(
    repository: str | Path | RepositoryStore,
    built: list[BuiltVariant],
    *,
    version: int | None = None,
    on_file: Callable[[str], None] | None = None,
) -> list[Published]:
    """Stage and verify every variant, then commit them; on any failure nothing of this run stays published.

    Args:
        repository: a folder (created if missing), a URL (``s3://...``) or a store.
        built: the verified variants.
        version: publish exactly this version number; default: each model's next free one.
        on_file: hears of each object uploaded to an object store (progress).
    """
    stages = [
        functools.partial(
            _StagedWithFiles, manifest=item.manifest, model_path=item.model_path, extra_files=item.extra_files
        )
        for item in built
    ]
    return commit_all(repository, stages, version=version, on_file=on_file)
