"""Measure every model of a repository side by side and assemble the comparison :class:`Report`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rich.progress import Progress

from modelpress.common.errors import UserError
from modelpress.export.compare.machine import describe_machine
from modelpress.export.compare.macs import count_macs
from modelpress.export.compare.runners import (
    TEXT_SEQUENCE,
    concrete_shape,
    graph_inputs,
    ort_callable,
    ort_session,
    synthetic_inputs,
    throughput_batch,
    torch_callable,
)
from modelpress.export.compare.schema import Report, TorchBaseline, VariantRow
from modelpress.export.compare.timing import STANDARD, TimingBudget, measure, rows_per_second
from modelpress.export.compare.torch_source import NoBaselineError, baseline_source, load_baseline
from modelpress.export.sizes import GZIP_LEVEL, gzip_bytes, onnx_bytes
from modelpress.serving.graph_manifest import manifest_for
from modelpress.serving.manifest import (
    ManifestError,
    ModelManifest,
    list_models,
    list_versions,
    verify_files,
)

# Lineage steps that change precision or weights: a model whose lineage has none of them is a plain export.
_COMPRESSING = ("quant", "int8", "fp16", "prune", "distill", "sparse")


class CompareError(UserError):
    """The repository cannot be compared (missing, empty, or a file)."""


def family_of(manifest: ModelManifest) -> str:
    """The family a model belongs to: models made from the same source share one.

    The exporter records it in ``source.family``; without it, the name before the first '-'
    (``digits-int8`` → ``digits``).
    """
    family = manifest.source.get("family")
    return str(family) if family else manifest.name.split("-", 1)[0]


def _is_plain_fp32(manifest: ModelManifest) -> bool:
    names = " ".join(step.name.lower() for step in manifest.lineage)
    return manifest.precision == "fp32" and not any(word in names for word in _COMPRESSING)


def _gzip_bytes(manifest: ModelManifest, version_dir: Path) -> int:
    """The manifest's gzip figure when it was taken at the level every row uses, else measured again.

    Manifests written before sizes had one home recorded text models at level 1 and others at 6, without saying.
    """
    size = manifest.size
    if size is not None and size.gzip_bytes and getattr(size, "gzip_level", None) == GZIP_LEVEL:
        return size.gzip_bytes
    return gzip_bytes(version_dir / manifest.model_file)


def _latest(repository: Path, name: str) -> tuple[Path, ModelManifest | None, str | None]:
    version_dir = repository / name / str(list_versions(repository / name)[-1])
    try:
        manifest = manifest_for(name, version_dir)  # a bare model.onnx: described from its graph, as served
        verify_files(manifest, version_dir)
    except ManifestError as e:
        return version_dir, None, str(e)
    return version_dir, manifest, None


def _row_from_manifest(manifest: ModelManifest, version_dir: Path) -> VariantRow:
    size = manifest.size
    quality = manifest.quality
    fidelity = {k: float(v) for k, v in quality.items() if k.startswith(("cosine", "mean_cosine", "min_cosine", "nn_"))}
    notes = [f"published with --force: {warning}" for warning in quality.get("forced") or []]
    return VariantRow(
        notes=notes,
        model=manifest.name,
        version=manifest.version,
        family=family_of(manifest),
        is_baseline=False,
        precision=manifest.precision,
        task=manifest.task,
        lineage=[step.name for step in manifest.lineage],
        parameters=size.parameters if size else None,
        nonzero_parameters=size.nonzero_parameters if size else None,
        macs=size.macs if size else None,
        onnx_bytes=onnx_bytes(version_dir / manifest.model_file),
        gzip_bytes=_gzip_bytes(manifest, version_dir),
        accuracy=quality.get("accuracy"),
        macro_f1=quality.get("macro_f1"),
        fidelity=fidelity,
        teacher_agreement=quality.get("top1_agreement"),
    )


def _measure_variant(
    row: VariantRow, manifest: ModelManifest, version_dir: Path, threads: int, batch: int, budget: TimingBudget
) -> None:
    model_path = version_dir / manifest.model_file
    try:
        single = synthetic_inputs(manifest, 1)
    except ValueError as e:
        row.notes.append(f"latency not measured: {e}")
        return
    batch = throughput_batch(manifest, batch)
    if row.macs is None:
        shapes = {spec.name: concrete_shape(spec, 1, TEXT_SEQUENCE) for spec in graph_inputs(manifest)}
        row.macs = count_macs(model_path, shapes)
    session = ort_session(model_path, threads)
    stats = measure(ort_callable(session, single), budget)
    row.latency_p50_ms, row.latency_p99_ms = stats.p50_ms, stats.p99_ms
    batched = synthetic_inputs(manifest, batch)
    row.throughput_rows_s = rows_per_second(measure(ort_callable(session, batched), budget), batch)


def _measure_torch(manifest: ModelManifest, threads: int, batch: int, budget: TimingBudget) -> TorchBaseline:
    source = baseline_source(manifest)
    baseline = TorchBaseline(checkpoint=source)
    try:
        module = load_baseline(manifest)
    except NoBaselineError as e:
        baseline.notes.append(str(e))
        return baseline
    batch = throughput_batch(manifest, batch)  # a text model's eager baseline runs the batch its variants run
    try:
        stats = measure(torch_callable(module, synthetic_inputs(manifest, 1), threads), budget)
        baseline.latency_p50_ms, baseline.latency_p99_ms = stats.p50_ms, stats.p99_ms
        batched = measure(torch_callable(module, synthetic_inputs(manifest, batch), threads), budget)
        baseline.throughput_rows_s, baseline.throughput_batch = rows_per_second(batched, batch), batch
    except Exception as e:  # an imported program with a fixed batch, say: one family must not stop the report
        baseline.notes.append(f"PyTorch eager could not run: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    return baseline


def mark_pareto(rows: Iterable[VariantRow]) -> None:
    """Flag rows no other row beats on both size (smaller) and quality (higher), per family."""
    candidates = [r for r in rows if r.status == "ok" and r.onnx_bytes is not None and _quality(r) is not None]
    for row in candidates:
        row.pareto = not any(
            other is not row
            and other.family == row.family
            and other.onnx_bytes <= row.onnx_bytes
            and _quality(other) >= _quality(row)
            and (other.onnx_bytes < row.onnx_bytes or _quality(other) > _quality(row))
            for other in candidates
        )


def _quality(row: VariantRow) -> float | None:
    if row.accuracy is not None:
        return float(row.accuracy)
    return row.fidelity.get("mean_cosine")


def _assign_baselines(rows: list[VariantRow], manifests: dict[str, ModelManifest]) -> dict[str, VariantRow]:
    baselines: dict[str, VariantRow] = {}
    for row in rows:
        manifest = manifests.get(row.model)
        if manifest is None or not _is_plain_fp32(manifest):
            continue
        current = baselines.get(row.family)
        # Prefer the model named after the family, then the largest plain fp32 export.
        if (
            current is None
            or row.model == row.family
            or (current.model != current.family and (row.onnx_bytes or 0) > (current.onnx_bytes or 0))
        ):
            baselines[row.family] = row
    for row in baselines.values():
        row.is_baseline = True
    return baselines


def build_report(
    repository: Path, *, threads: int = 2, throughput_batch: int = 64, budget: TimingBudget = STANDARD,
    progress: bool = True,
) -> Report:  # fmt: skip
    """Measure the latest version of every model in ``repository``; failed models become failed rows."""
    repository = Path(repository)
    if not repository.is_dir():
        raise CompareError(f"{repository}: not a model repository (missing or not a folder)")
    names = list_models(repository)
    if not names:
        raise CompareError(f"{repository}: no models found (expected <repository>/<model>/<version>/)")
    rows: list[VariantRow] = []
    manifests: dict[str, ModelManifest] = {}
    dirs: dict[str, Path] = {}
    for name in names:
        version_dir, manifest, problem = _latest(repository, name)
        if manifest is None:
            rows.append(VariantRow(model=name, version=int(version_dir.name), family=name.split("-", 1)[0],
                                   is_baseline=False, precision="?", task="?", lineage=[], status="failed",
                                   notes=[problem or "unreadable"]))  # fmt: skip
            continue
        manifests[name], dirs[name] = manifest, version_dir
        rows.append(_row_from_manifest(manifest, version_dir))
    baselines = _assign_baselines(rows, manifests)
    report = Report(repository=str(repository), threads=threads, throughput_batch=throughput_batch,
                    machine=describe_machine(threads), rows=rows)  # fmt: skip
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("measuring", total=len(rows) + len(baselines))
        for family, base in baselines.items():
            bar.update(task, description=f"PyTorch eager: {family}")
            report.baselines[family] = _measure_torch(manifests[base.model], threads, throughput_batch, budget)
            bar.advance(task)
        for row in rows:
            bar.update(task, description=f"ONNX Runtime: {row.model}")
            if row.status == "ok":
                try:
                    _measure_variant(row, manifests[row.model], dirs[row.model], threads, throughput_batch, budget)
                except Exception as e:  # one broken model must not hide the others
                    row.status = "failed"
                    row.notes.append(f"could not run in ONNX Runtime: {type(e).__name__}: {e}")
            bar.advance(task)
    _ratios(report, baselines)
    mark_pareto(report.rows)
    return report


def empty_report(repository: Path, threads: int, throughput_batch: int) -> Report:
    """A report of no rows, for a repository with nothing to compare (the HTML report says so)."""
    return Report(repository=str(repository), threads=threads, throughput_batch=throughput_batch,
                  machine=describe_machine(threads), rows=[])  # fmt: skip


def _ratios(report: Report, baselines: dict[str, VariantRow]) -> None:
    for row in report.rows:
        base = baselines.get(row.family)
        if base is None:
            row.notes.append("no plain fp32 export in this family: no size ratio")
        elif base.onnx_bytes and row.onnx_bytes:
            row.size_ratio = base.onnx_bytes / row.onnx_bytes
        torch_base = report.baselines.get(row.family)
        if torch_base and torch_base.latency_p50_ms and row.latency_p50_ms:
            row.speedup_vs_torch = torch_base.latency_p50_ms / row.latency_p50_ms
