"""The export stage as functions: a checkpoint in, verified variants published to a model repository out."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import Progress

from modelpress.export.compress.quality import compressed_quality
from modelpress.export.data import EvalData, eval_data_for_checkpoint
from modelpress.export.errors import ExportError
from modelpress.export.manifest_builder import build_manifest
from modelpress.export.passes import PassContext, build_pass
from modelpress.export.repository import Published, StagedVersion, check_repository, check_version_free, commit_all
from modelpress.export.spec import ExportSpec, parse_spec, variant_model_name
from modelpress.export.verify import Reference, check_structure, judge, measure_quality, reference
from modelpress.serving.manifest import ModelManifest, PassRecord


@dataclass
class BuiltVariant:
    """A verified variant waiting to be published."""

    variant: str
    manifest: ModelManifest
    model_path: Path
    warnings: list[str] = field(default_factory=list)
    extra_files: list[Path] = field(default_factory=list)  # travel into the version folder (a tokenizer)


@dataclass
class _Chain:
    """Runs pass steps, reusing the output of a step prefix another variant already ran (same config hash)."""

    work: Path
    ctx: PassContext
    cache: dict[tuple[str, ...], tuple[Path, str | None, PassRecord, Any]] = field(default_factory=dict)

    def run(
        self, steps: list[dict[str, Any]], on_step: Any = None, start: Path | None = None
    ) -> tuple[Path, str, list[PassRecord], Any]:
        """Run ``steps``; return the model path, precision, lineage and the PyTorch module the ONNX came from.

        ``start`` is an ONNX model the steps begin from (an imported one); None: the steps make it (onnx pass).
        """
        model_path: Path | None = start
        module = self.ctx.module  # replaced by PyTorch-level passes (distill, prune) for the passes after them
        precisions: list[str] = []
        records: list[PassRecord] = []
        key: tuple[str, ...] = ()
        for step in steps:
            pass_ = build_pass(step)
            record = PassRecord(name=pass_.name, config=pass_.config.model_dump(mode="json"))
            key = (*key, record.config_hash())
            if key not in self.cache:
                if on_step:
                    on_step(pass_.name)
                out_dir = self.work / f"{len(self.cache):02d}-{pass_.name}"
                started = time.perf_counter()
                output = pass_.run(model_path, out_dir, dataclasses.replace(self.ctx, module=module))
                record.seconds = round(time.perf_counter() - started, 3)
                record.details = output.details  # PassRecord allows extra fields: what the pass decided
                self.cache[key] = (output.model_path, output.precision, record, output.module)
            path, precision, record, produced = self.cache[key]
            if produced is None:
                model_path = path
            else:  # the next pass reads the new module, not a file
                module = produced
            records.append(record)
            if precision:
                precisions.append(precision)
        if model_path is None:
            raise ExportError("an export variant needs at least one step")
        return model_path, _overall_precision(precisions), records, module


def _overall_precision(precisions: list[str]) -> str:
    kinds = set(precisions)
    if not kinds:
        return "fp32"
    return kinds.pop() if len(kinds) == 1 else "mixed"


def export_checkpoint(
    checkpoint: Path,
    repository: Path,
    name: str,
    *,
    variants: Sequence[str] | None = None,
    spec: dict[str, Any] | ExportSpec | None = None,
    force: bool = False,
    version: int | None = None,
    data: EvalData | None = None,
    progress: bool = True,
) -> list[Published]:
    """Export, verify and publish every variant of a checkpoint; all of them or none.

    Args:
        checkpoint: a folder written by ``modelpress.training.checkpoint.save_checkpoint``.
        repository: the model repository (created if missing).
        name: the base model name; variants other than fp32 are published as ``<name>-<variant>``.
        variants: which variants to publish (default: the spec's list, fp32, fp16 and int8).
        spec: the recipe's ``export:`` section (raw dict or parsed), for steps and thresholds.
        force: publish compressed variants that miss the quality thresholds (their warnings are kept).
        version: publish exactly this version number (an existing one is an error); default: the next free.
        data: calibration and test samples; default: rebuilt from the checkpoint through ``modelpress.training.data``.
        progress: show a progress bar.

    Raises:
        ExportError: bad input, a failed check or a refused variant; the repository is left unchanged.
        modelpress.training.checkpoint.CheckpointError: the checkpoint is missing files or was edited.
    """
    checkpoint, repository = Path(checkpoint), Path(repository)
    parsed = spec if isinstance(spec, ExportSpec) else parse_spec(spec, variants=list(variants) if variants else None)
    if isinstance(spec, ExportSpec) and variants:
        parsed = parse_spec(spec.model_dump(), variants=list(variants))
    names = {v: variant_model_name(name, v) for v in parsed.variants}
    check_repository(repository)
    for model_name in names.values():
        check_version_free(repository, model_name, version)
    module, meta = _load(checkpoint)
    data = data if data is not None else eval_data_for_checkpoint(meta)
    _check_data(data, meta.input_spec.shape)
    ref = reference(module, data.test_x, data.test_y, meta.task)
    ctx = PassContext(module=module, meta=meta, data=data, progress=progress)
    with _work_dir() as work, Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("export", total=len(parsed.variants))
        chain = _Chain(work, ctx)
        built = []
        for variant in parsed.variants:
            bar.update(task, description=f"{names[variant]}")
            note = _step_note(bar, task, names[variant])
            built.append(_build_variant(variant, names[variant], name, parsed, chain, ref, checkpoint, force, note))
            bar.advance(task)
        return publish_all(repository, built, version=version)


def _step_note(bar: Progress, task: Any, model_name: str) -> Any:
    return lambda step: bar.update(task, description=f"{model_name}: {step}")


def _build_variant(
    variant: str,
    model_name: str,
    family: str,
    spec: ExportSpec,
    chain: _Chain,
    ref: Reference,
    checkpoint: Path,
    force: bool,
    on_step: Any,
) -> BuiltVariant:
    ctx = chain.ctx
    model_path, precision, records, module = chain.run(spec.steps_for(variant), on_step)
    on_step("verify")
    check_structure(model_path, ctx.meta.input_spec.shape, ctx.meta.num_outputs)
    if module is ctx.module:
        quality = measure_quality(model_path, ctx.data.test_x, ctx.data.test_y, ref, ctx.meta.task, spec.verify)
    else:  # distilled or pruned: conversion checked against its own module, the loss against the checkpoint's
        quality = compressed_quality(model_path, module, ctx.data.test_x, ctx.data.test_y, ref, ctx.meta.task,
                                     spec.verify)  # fmt: skip
    warnings = judge(model_name, precision, quality, spec.verify, force=force)
    if warnings:
        quality["forced"] = warnings
    manifest = build_manifest(
        name=model_name, family=family, variant=variant, model_path=model_path, precision=precision,
        lineage=records, quality=quality, meta=ctx.meta, module=module, checkpoint=checkpoint,
    )  # fmt: skip
    return BuiltVariant(variant, manifest, model_path, warnings)


def publish_all(repository: Path, built: list[BuiltVariant], *, version: int | None = None) -> list[Published]:
    """Stage and verify every variant, then commit them; on any failure nothing of this run stays published."""
    stages = [
        functools.partial(StagedVersion, repository, item.manifest, item.model_path, item.extra_files) for item in built
    ]
    return commit_all(repository, stages, version=version)


def _load(checkpoint: Path):
    from modelpress.training.checkpoint import load_checkpoint

    try:
        return load_checkpoint(checkpoint)
    except ValueError as e:  # build_model rejects an edited architecture or config
        raise ExportError(f"{checkpoint}: cannot rebuild the model: {e}") from e


def _check_data(data: EvalData, input_shape: list[int]) -> None:
    for label, array in (("calibration", data.calibration), ("test", data.test_x)):
        if list(array.shape[1:]) != list(input_shape):
            shape = list(array.shape[1:])
            raise ExportError(f"{label} samples have shape {shape}, the checkpoint expects {input_shape}")


@contextlib.contextmanager
def _work_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="modelpress-export-") as tmp:
        yield Path(tmp)
