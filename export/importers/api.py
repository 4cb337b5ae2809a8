"""``modelpress import``: a model the user brought in, verified variants published to a model repository out."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from modelpress.export.api import _work_dir
from modelpress.export.chain import BuiltVariant, Chain, ChainStart, publish_all
from modelpress.export.data import EvalData
from modelpress.export.errors import ExportError, VerificationError
from modelpress.export.importers import InputSignature, SourceModel, load_source
from modelpress.export.importers.base import Task, brief
from modelpress.export.importers.data import UserData, label_indices, load_data
from modelpress.export.importers.manifest import build_import_manifest, import_record
from modelpress.export.importers.variants import DEFAULT_VARIANTS, import_steps, quantizes_statically
from modelpress.export.importers.verify import (
    Evidence,
    ImportVerifySpec,
    gather_evidence,
    judge_variant,
    measure,
    run_variant,
)
from modelpress.export.manifest_builder import ServingContract
from modelpress.export.passes import PassContext
from modelpress.export.passes.base import OnnxHandle, QualityStrategy
from modelpress.export.repository import Published, check_repository, check_version_free
from modelpress.export.spec import variant_model_name
from modelpress.export.verify import tensor_specs
from modelpress.serving.manifest import PassRecord, TensorSpec
from modelpress.serving.store import RepositoryStore


@dataclass(frozen=True)
class ImportRequest:
    """What to import and how (the CLI's flags)."""

    source: Path
    repository: str | Path | RepositoryStore
    name: str
    variants: Sequence[str] = DEFAULT_VARIANTS
    calibration: Path | None = None
    eval: Path | None = None
    label: str | None = None
    task: Task | None = None
    signature: InputSignature | None = None
    force: bool = False
    verify: ImportVerifySpec = field(default_factory=ImportVerifySpec)


@dataclass
class Prepared:
    """A source read and run: what every variant (or search candidate) is made from and checked against."""

    source: SourceModel
    record: PassRecord
    task: Task
    evidence: Evidence
    chain: Chain


def import_model(request: ImportRequest, *, progress: bool = True) -> list[Published]:
    """Read the source, make every variant with the export passes, verify each against the source, publish.

    All variants or none: nothing is published until every one passed; bad input fails before any pass runs.

    Raises:
        ExportError: bad input (source, data file, variant, name, repository) or a refused variant.
    """
    names = {v: variant_model_name(request.name, v) for v in request.variants}
    steps = {v: import_steps(v) for v in request.variants}
    check_repository(request.repository)
    for model_name in names.values():
        check_version_free(request.repository, model_name, None)
    with _work_dir() as work, Progress(disable=not progress, transient=True) as bar:
        task_bar = bar.add_task(f"reading {request.source.name}", total=len(request.variants) + 1)
        prepared = prepare(request, work, steps)
        bar.advance(task_bar)
        built = []
        for variant in request.variants:
            bar.update(task_bar, description=names[variant])
            built.append(_build(variant, names[variant], steps[variant], request, prepared))
            bar.advance(task_bar)
        return publish_all(request.repository, built)


def prepare(request: ImportRequest, work: Path, steps: dict[str, list[dict[str, Any]]]) -> Prepared:
    """Read the source into ``work``, load and check the data files, run the source on the evidence.

    Raises:
        ExportError: the source or a data file is unusable, or static int8 is asked for without calibration.
    """
    if request.label is not None and request.eval is None:
        raise ExportError("--label names a column of the --eval file: pass --eval FILE too")
    started = time.perf_counter()
    source = load_source(request.source, work, signature=request.signature)
    record = import_record(source, round(time.perf_counter() - started, 3))
    graph_inputs, _ = _graph_specs(source.onnx_path)
    calibration, evaluation = _user_data(request, source, graph_inputs)
    if evaluation is not None and evaluation.labels is not None:
        evaluation = label_indices(evaluation, source.labels)
    _check_calibration(steps, source, calibration)
    evidence = gather_evidence(source, graph_inputs, evaluation or calibration, request.verify)
    task = request.task or source.task or "generic"
    quality = ImportQuality(evidence, task, request.verify)
    start = ChainStart(OnnxHandle(source.onnx_path), record, ServingContract(task=task), _context(calibration, quality))
    return Prepared(source, record, task, evidence, Chain(work, start))


def run_steps(name: str, steps: list[dict[str, Any]], prepared: Prepared) -> tuple[Path, str, list[PassRecord]]:
    """Run the passes from the imported graph; a foreign tool refusing the graph is a named error.

    Raises:
        ExportError: a pass refused the model (VerificationError naming the variant and the tool's reason).
    """
    try:
        result = prepared.chain.run(steps)
    except ExportError:
        raise
    except Exception as e:  # onnx / onnxruntime tools refusing a graph they do not handle (ONNX-ML ops, ...)
        raise VerificationError(
            f"{name}: its passes failed on this model ({type(e).__name__}: {brief(e)}); leave it out"
        ) from e
    return result.model.path, result.precision, result.lineage


def _graph_specs(model_path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    inputs, outputs = tensor_specs(model_path)
    return [TensorSpec(**s) for s in inputs], [TensorSpec(**s) for s in outputs]


def _user_data(
    request: ImportRequest, source: SourceModel, inputs: list[TensorSpec]
) -> tuple[UserData | None, UserData | None]:
    text = source.text is not None
    calibration = (
        load_data(request.calibration, inputs, text=text, purpose="--calibration") if request.calibration else None
    )
    evaluation = (
        load_data(request.eval, inputs, label=request.label, text=text, purpose="--eval") if request.eval else None
    )
    return calibration, evaluation


def _check_calibration(
    steps: dict[str, list[dict[str, Any]]], source: SourceModel, calibration: UserData | None
) -> None:
    import onnx

    ops = {n.op_type for n in onnx.load(str(source.onnx_path), load_external_data=False).graph.node}
    static = [name for name, chain in steps.items() if quantizes_statically(chain, ops)]
    if static and calibration is None:
        why = " (static QDQ is what int8 means for a graph with convolutions)" if "int8" in static else ""
        raise ExportError(
            f"{static[0]} quantizes statically{why} and needs calibration data: pass --calibration FILE "
            "(.npz or .csv of typical inputs, a few hundred samples), or ask for int8-dynamic"
        )
    if static and calibration is not None and calibration.feeds is None:
        raise ExportError(
            f"{static[0]}: static int8 calibrates on graph tensors, and a text model's --calibration holds "
            "sentences: ask for int8-dynamic"
        )


@dataclass
class ImportQuality(QualityStrategy):
    """An import's variants judged against the source itself, on the evidence (the user's data or synthetic)."""

    evidence: Evidence
    task: Task
    spec: ImportVerifySpec

    def measure(self, model: OnnxHandle) -> dict[str, Any]:
        return measure(run_variant(model.path, self.evidence), self.evidence, self.task)

    def judge(
        self, model_name: str, variant: str, precision: str, quality: dict[str, Any], *, force: bool
    ) -> list[str]:
        return judge_variant(model_name, precision, quality, self.task, self.spec, force=force)


def _context(calibration: UserData | None, quality: ImportQuality) -> PassContext:
    """The passes' context: no checkpoint, the user's calibration samples, the import's quality strategy."""
    feeds = calibration.feeds if calibration and calibration.feeds else None
    samples = next(iter(feeds.values())) if feeds else np.zeros((1, 1))
    # The ONNX passes read the calibration split only; the test split stands in for the interface's sake.
    data = EvalData(calibration=samples, test_x=samples[:1], test_y=np.zeros(1, dtype=np.int64),
                    calibration_by_input=feeds)  # fmt: skip
    return PassContext(quality=quality, data=data)


def _build(
    variant: str, model_name: str, steps: list[dict[str, Any]], request: ImportRequest, prepared: Prepared
) -> BuiltVariant:
    model_path, precision, records = run_steps(model_name, steps, prepared)
    strategy = prepared.chain.start.context.quality
    quality = strategy.measure(OnnxHandle(model_path))
    warnings = strategy.judge(model_name, variant, precision, quality, force=request.force)
    if warnings:
        quality["forced"] = warnings
    return built_variant(variant, model_name, request.name, model_path, precision, [prepared.record, *records],
                         quality, prepared, warnings)  # fmt: skip


def built_variant(
    variant: str, model_name: str, family: str, model_path: Path, precision: str, lineage: list[PassRecord],
    quality: dict[str, Any], prepared: Prepared, warnings: list[str] | None = None,
) -> BuiltVariant:  # fmt: skip
    """A verified variant with its manifest, ready for :func:`publish_all` (the tokenizer travels along)."""
    graph_inputs, graph_outputs = _graph_specs(model_path)  # fp16 and int8 keep fp32 inputs and outputs
    source = prepared.source
    manifest = build_import_manifest(
        name=model_name, family=family, variant=variant, model_path=model_path, precision=precision,
        task=prepared.task, lineage=lineage, quality=quality, source=source, graph_inputs=graph_inputs,
        graph_outputs=graph_outputs,
    )  # fmt: skip
    extra = [source.text.tokenizer_file] if source.text else []
    return BuiltVariant(variant, manifest, model_path, warnings or [], extra_files=extra)
