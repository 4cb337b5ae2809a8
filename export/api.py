"""The export stage as functions: a checkpoint in, verified variants published to a model repository out."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.progress import Progress

from modelpress.export.chain import BuiltVariant, Chain, ChainStart, build_variant, publish_all
from modelpress.export.data import EvalData, eval_data_for_checkpoint
from modelpress.export.errors import ExportError
from modelpress.export.manifest_builder import checkpoint_contract, training_record
from modelpress.export.passes import PassContext
from modelpress.export.passes.base import TorchHandle
from modelpress.export.quality import TensorQuality
from modelpress.export.repository import Published, check_repository, check_version_free
from modelpress.export.spec import ExportSpec, parse_spec, variant_model_name
from modelpress.serving.store import RepositoryStore

__all__ = ["BuiltVariant", "checkpoint_start", "export_checkpoint", "publish_all", "publish_with_progress", "run_chain"]


def export_checkpoint(
    checkpoint: Path,
    repository: str | Path | RepositoryStore,
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
        repository: the model repository: a folder (created if missing), a URL (``s3://...``) or a store.
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
    checkpoint = Path(checkpoint)
    parsed = spec if isinstance(spec, ExportSpec) else parse_spec(spec, variants=list(variants) if variants else None)
    if isinstance(spec, ExportSpec) and variants:
        parsed = parse_spec(spec.model_dump(), variants=list(variants))
    names = {v: variant_model_name(name, v) for v in parsed.variants}
    check_repository(repository)
    for model_name in names.values():
        check_version_free(repository, model_name, version)
    start = checkpoint_start(checkpoint, parsed, data=data, progress=progress)
    with _work_dir() as work:
        built = run_chain(start, parsed, name, work, force=force, progress=progress)
        return publish_with_progress(repository, built, version=version, progress=progress)


def publish_with_progress(
    repository: str | Path | RepositoryStore,
    built: list[BuiltVariant],
    *,
    version: int | None = None,
    progress: bool = True,
) -> list[Published]:
    """:func:`publish_all` with a progress line per object uploaded (object stores; a folder is one rename)."""
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("publish", total=None)
        return publish_all(
            repository, built, version=version, on_file=lambda rel: bar.update(task, description=f"uploaded {rel}")
        )


def checkpoint_start(
    checkpoint: Path, spec: ExportSpec, *, data: EvalData | None = None, progress: bool = False
) -> ChainStart:
    """The chain's start for a recipe-trained checkpoint: its module, ``train`` record, data and accuracy checks.

    Raises:
        ExportError: the data does not fit the checkpoint, or the model cannot be rebuilt.
        modelpress.training.checkpoint.CheckpointError: the checkpoint is missing files or was edited.
    """
    module, meta = _load(checkpoint)
    data = data if data is not None else eval_data_for_checkpoint(meta)
    _check_data(data, meta.input_spec.shape)
    quality = TensorQuality(module, meta, data, spec.verify)
    context = PassContext(quality=quality, data=data, meta=meta, progress=progress)
    return ChainStart(TorchHandle(module), training_record(meta), checkpoint_contract(meta, checkpoint), context)


def run_chain(
    start: ChainStart, spec: ExportSpec, name: str, work: Path, *, force: bool = False, progress: bool = True
) -> list[BuiltVariant]:
    """Build and verify every variant ``spec`` lists from ``start`` (nothing is published yet).

    Raises:
        ExportError: a pass failed, a check failed, or a variant was refused (see ``force``).
    """
    names = {v: variant_model_name(name, v) for v in spec.variants}
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("export", total=len(spec.variants))
        start.context.note = lambda text: bar.update(task, description=text)
        chain = Chain(work, start)
        built = []
        for variant in spec.variants:
            bar.update(task, description=f"{names[variant]}")
            note = _step_note(bar, task, names[variant])
            built.append(build_variant(variant, names[variant], name, spec, chain, force=force, on_step=note))
            bar.advance(task)
    return built


def _step_note(bar: Progress, task: Any, model_name: str) -> Callable[[str], None]:
    return lambda step: bar.update(task, description=f"{model_name}: {step}")


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
