"""Accuracy-aware search: try every candidate of a grid, measure each, keep them all, mark the winners.

Every candidate is exported, verified and measured the same way (raw ONNX bytes with external data, gzip
bytes, parameters and nonzero parameters, test accuracy with ONNX Runtime, batch-1 latency with the same
thread count). A candidate that fails, or loses more than ``max_accuracy_drop`` points against the
checkpoint, stays in the result with its reason. Among those within tolerance the smallest (raw bytes) and
the fastest (batch-1 p50) are marked, and the Pareto front over size, latency and accuracy is flagged.

With a repository to publish to, the winners (and, if asked, every Pareto candidate within tolerance) are
published together, atomically, as the pipeline publishes its variants: each version with its manifest,
lineage (training, then every pass with its config) and the search's figures, or none of them.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.progress import Progress

from modelpress.export.compare.runners import batch1_latency_ms
from modelpress.export.compare.worker import eager_latency_ms
from modelpress.export.compress.grid import PRECISION_STEPS, SearchGrid
from modelpress.export.errors import ExportError
from modelpress.export.repository import check_repository
from modelpress.export.sizes import count_nonzero_parameters, count_parameters, gzip_bytes, onnx_bytes
from modelpress.export.spec import ExportSpec, VerifySpec, parse_spec, variant_model_name
from modelpress.serving.store import RepositoryStore

if TYPE_CHECKING:
    from modelpress.export.chain import Chain, ChainResult, ChainStart

SCHEMA_VERSION = 1


@dataclass
class Candidate:
    """One tried variant and everything measured about it (``None`` where it failed before that figure)."""

    name: str
    steps: list[dict[str, Any]]
    status: str = "pending"  # ok | rejected (beyond tolerance) | failed (with the error)
    reason: str | None = None
    precision: str | None = None
    parameters: int | None = None
    nonzero_parameters: int | None = None
    onnx_bytes: int | None = None
    gzip_bytes: int | None = None
    accuracy: float | None = None
    macro_f1: float | None = None
    accuracy_drop_points: float | None = None
    top1_agreement: float | None = None
    latency_p50_ms: float | None = None
    size_ratio: float | None = None
    speedup_vs_eager: float | None = None
    seconds: float | None = None
    pareto: bool = False
    smallest: bool = False
    fastest: bool = False
    published: str | None = None  # "<model>/<version>" when this candidate was published


@dataclass
class PublishRequest:
    """Where and what to publish from a search.

    Attributes:
        repository: the model repository (a folder, created if missing, a URL or a store).
        name: base model name; a candidate is published as ``<name>-<candidate>`` (default: the checkpoint's
            recipe's export name, else its name).
        pareto: also publish every Pareto-front candidate within tolerance, not only the winners.
    """

    repository: str | Path | RepositoryStore
    name: str | None = None
    pareto: bool = False


@dataclass
class _Artifact:
    """What a measured candidate left in the work folder, kept until the search decides what to publish."""

    result: ChainResult
    quality: dict[str, Any]


@dataclass
class SearchResult:
    checkpoint: str
    max_accuracy_drop_points: float
    threads: int
    baseline: Candidate
    eager_latency_p50_ms: float | None
    candidates: list[Candidate] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def within_tolerance(self) -> list[Candidate]:
        return [c for c in self.candidates if c.status == "ok"]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["smallest"] = next((c.name for c in self.candidates if c.smallest), None)
        data["fastest"] = next((c.name for c in self.candidates if c.fastest), None)
        data["pareto"] = [c.name for c in self.candidates if c.pareto]
        data["published"] = {c.name: c.published for c in self.candidates if c.published}
        return data


def search(
    checkpoint: Path,
    grid: SearchGrid,
    *,
    max_accuracy_drop: float,
    threads: int = 2,
    quick: bool = False,
    progress: bool = True,
    publish: PublishRequest | None = None,
) -> SearchResult:
    """Run every candidate of ``grid`` on ``checkpoint`` and return all of them, measured and marked.

    Args:
        checkpoint: a training checkpoint folder (its data splits are rebuilt for fine-tuning and testing).
        grid: the candidates to try.
        max_accuracy_drop: tolerance in accuracy points (0.5 = half a percentage point) against the checkpoint.
        threads: ONNX Runtime and PyTorch threads for the latency figures.
        quick: shorter timing runs (noisier latency).
        progress: show a progress bar.
        publish: publish the smallest and fastest within tolerance (and optionally the Pareto front) there.

    Raises:
        ExportError: the checkpoint is unusable, the grid names an invalid step or the repository is not one
            (before any candidate runs), or publishing failed (then nothing of this search is published).
    """
    from modelpress.export.api import checkpoint_start
    from modelpress.export.chain import Chain
    from modelpress.training.checkpoint import read_meta

    if max_accuracy_drop < 0:
        raise ExportError(f"--max-accuracy-drop must be 0 or more points, got {max_accuracy_drop}")
    candidates = grid.candidates()
    parse_spec({"variants": [name for name, _ in candidates] or ["fp32"], "steps": dict(candidates)})
    meta = read_meta(Path(checkpoint))
    if publish is not None:
        publish = _check_publish(publish, meta, [name for name, _ in candidates])
    if meta.task != "classification":
        raise ExportError(f"the search judges test accuracy: it needs a classification checkpoint, got {meta.task}")
    # every test sample is compared with PyTorch; the tolerance is the search's own, judged after all candidates
    spec = ExportSpec(verify=VerifySpec(samples=2**31 - 1))
    start = checkpoint_start(Path(checkpoint), spec)
    with tempfile.TemporaryDirectory(prefix="modelpress-search-") as work, Progress(disable=not progress) as bar:
        chain = Chain(Path(work), start)
        artifacts: dict[str, _Artifact] = {}
        task = bar.add_task("baseline", total=len(candidates) + 1)
        baseline = Candidate(name="baseline-fp32", steps=PRECISION_STEPS["fp32"])
        _run(baseline, chain, threads, quick, artifacts)
        if baseline.status != "ok":
            raise ExportError(f"the fp32 baseline could not be exported: {baseline.reason}")
        eager = eager_latency_ms(Path(checkpoint), threads, quick=quick)
        result = SearchResult(str(Path(checkpoint).resolve()), max_accuracy_drop, threads, baseline, eager)
        bar.advance(task)
        for name, steps in candidates:
            bar.update(task, description=name)
            candidate = Candidate(name=name, steps=steps)
            _run(candidate, chain, threads, quick, artifacts)
            result.candidates.append(candidate)
            bar.advance(task)
        _judge(result)
        if publish is not None:
            bar.update(task, description=f"publish to {publish.repository}")
            _publish(result, artifacts, publish, start)
    return result


def _check_publish(request: PublishRequest, meta: Any, names: list[str]) -> PublishRequest:
    """The request with its name resolved, once the repository and every model name it may write are valid."""
    check_repository(request.repository)
    recipe = meta.recipe or {}
    base = request.name or (recipe.get("export") or {}).get("name") or recipe.get("name") or "model"
    for name in names:
        variant_model_name(base, name)
    return PublishRequest(request.repository, base, request.pareto)


def to_publish(result: SearchResult, pareto: bool) -> dict[str, list[str]]:
    """Candidate name -> its roles (smallest, fastest, pareto), for the candidates a search publishes.

    Only candidates within tolerance: a Pareto candidate that missed it is reported, never published.
    """
    roles: dict[str, list[str]] = {}
    for c in result.within_tolerance():
        marks = [m for m, on in (("smallest", c.smallest), ("fastest", c.fastest), ("pareto", c.pareto)) if on]
        if c.smallest or c.fastest or (pareto and c.pareto):
            roles[c.name] = marks
    return roles


def _publish(result: SearchResult, artifacts: dict[str, _Artifact], request: PublishRequest, start: ChainStart) -> None:
    """Publish the chosen candidates in one atomic commit and note on each where it went."""
    from modelpress.export.chain import BuiltVariant, publish_all
    from modelpress.export.manifest_builder import build_manifest

    roles = to_publish(result, request.pareto)
    if not roles:
        return
    by_name = {c.name: c for c in result.candidates}
    built = []
    for name, marks in roles.items():
        art = artifacts[name]
        search_info = {"roles": marks, "max_accuracy_drop_points": result.max_accuracy_drop_points,
                       "latency_p50_ms": by_name[name].latency_p50_ms, "threads": result.threads,
                       "size_ratio": by_name[name].size_ratio}  # fmt: skip
        manifest = build_manifest(
            name=variant_model_name(request.name, name), family=request.name, variant=name,
            model=art.result.model, precision=art.result.precision, lineage=[start.record, *art.result.lineage],
            quality={**art.quality, "search": search_info}, contract=start.contract,
        )  # fmt: skip
        built.append(BuiltVariant(name, manifest, art.result.model.path))
    try:
        published = publish_all(request.repository, built)
    except (OSError, ValueError) as e:
        raise ExportError(f"publishing the search's winners to {request.repository} failed: {e}") from e
    for item, done in zip(built, published, strict=True):
        by_name[item.variant].published = f"{done.name}/{done.version}"


def _run(candidate: Candidate, chain: Chain, threads: int, quick: bool, artifacts: dict[str, _Artifact]) -> None:
    started = time.perf_counter()
    try:
        artifacts[candidate.name] = _measure(candidate, chain, threads, quick)
        candidate.status = "ok"
    # A candidate's failure (an export error, a quantizer refusing a graph, a training error) is a result
    # the user must see, not a reason to stop the search: record it and go on.
    except Exception as e:
        candidate.status = "failed"
        candidate.reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:400]
    candidate.seconds = round(time.perf_counter() - started, 3)


def _measure(candidate: Candidate, chain: Chain, threads: int, quick: bool) -> _Artifact:
    result = chain.run(candidate.steps)
    ctx = chain.start.context
    quality = ctx.quality.measure(result.model)  # structure, conversion and accuracy, as the pipeline checks them
    model_path, precision = result.model.path, result.precision
    module = result.model.source.module if result.model.source is not None else chain.start.handle.module
    candidate.precision = precision
    candidate.parameters = count_parameters(module)
    candidate.nonzero_parameters = count_nonzero_parameters(module)
    candidate.onnx_bytes = onnx_bytes(model_path)
    candidate.gzip_bytes = gzip_bytes(model_path)
    candidate.accuracy = quality["accuracy"]
    candidate.macro_f1 = quality["macro_f1"]
    candidate.accuracy_drop_points = round(100 * quality["accuracy_drop"], 4)
    candidate.top1_agreement = quality["top1_agreement"]
    candidate.latency_p50_ms = batch1_latency_ms(model_path, ctx.data.test_x[:1], threads, quick=quick)
    # a wrong fp32 conversion is a failed candidate, never a winner (the pipeline's hard check)
    ctx.quality.judge(candidate.name, candidate.name, precision, quality, force=True)
    return _Artifact(result, quality)


def _judge(result: SearchResult) -> None:
    """Tolerance, ratios against the baseline, smallest, fastest and the Pareto front."""
    base = result.baseline
    for c in [base, *result.candidates]:
        if c.onnx_bytes:
            c.size_ratio = round(base.onnx_bytes / c.onnx_bytes, 2)
        if c.latency_p50_ms and result.eager_latency_p50_ms:
            c.speedup_vs_eager = round(result.eager_latency_p50_ms / c.latency_p50_ms, 2)
    for c in result.candidates:
        if c.status == "ok" and c.accuracy_drop_points > result.max_accuracy_drop_points:
            c.status = "rejected"
            c.reason = (f"accuracy drop {c.accuracy_drop_points:.2f} points exceeds the tolerance of "
                        f"{result.max_accuracy_drop_points:g}")  # fmt: skip
    measured = [c for c in [base, *result.candidates] if c.status in ("ok", "rejected")]
    for c in measured:
        c.pareto = not any(_dominates(other, c) for other in measured if other is not c)
    within = result.within_tolerance()
    if within:
        min(within, key=lambda c: (c.onnx_bytes, c.latency_p50_ms)).smallest = True
        min(within, key=lambda c: (c.latency_p50_ms, c.onnx_bytes)).fastest = True


def _dominates(a: Candidate, b: Candidate) -> bool:
    """``a`` is no worse than ``b`` on size, latency and accuracy, and better on at least one."""
    pairs = [(a.onnx_bytes, b.onnx_bytes), (a.latency_p50_ms, b.latency_p50_ms), (-a.accuracy, -b.accuracy)]
    return all(x <= y for x, y in pairs) and any(x < y for x, y in pairs)
