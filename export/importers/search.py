"""``modelpress search`` on a model users bring: every precision of the import, measured side by side.

Pruning and distillation train the PyTorch module on its training data, which an imported model does not come
with, so the grid of an import is its precisions (fp32, fp16, fp16w, int8, int8-dynamic). Each candidate is
made by the same passes as ``modelpress import``, judged on the ``--eval`` file's labels against the source's
own accuracy on it, timed at batch 1 with the same thread count, and marked like a trained model's candidates.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.progress import Progress

from modelpress.export.compare.runners import ort_callable, ort_session
from modelpress.export.compare.timing import QUICK, STANDARD
from modelpress.export.compare.timing import measure as time_it
from modelpress.export.compress.search import Candidate, PublishRequest, SearchResult, _judge, to_publish
from modelpress.export.errors import ExportError
from modelpress.export.importers.api import ImportRequest, Prepared, built_variant, prepare, run_steps
from modelpress.export.importers.verify import judge_variant, measure, run_variant
from modelpress.export.repository import check_repository
from modelpress.export.sizes import gzip_bytes, onnx_bytes
from modelpress.export.spec import variant_model_name

# The steps after the import for each precision a search may try (the grid's names, plus int8-dynamic).
PRECISION_STEPS: dict[str, list[dict[str, Any]]] = {
    "fp32": [{"pass": "optimize"}],
    "fp16": [{"pass": "optimize"}, {"pass": "fp16"}],
    "fp16w": [{"pass": "optimize"}, {"pass": "fp16", "weights_only": True}],
    "int8": [{"pass": "quantize", "mode": "auto"}],
    "int8-dynamic": [{"pass": "quantize", "mode": "dynamic"}],
}


def search_import(
    request: ImportRequest,
    precisions: Sequence[str],
    *,
    max_accuracy_drop: float,
    threads: int = 2,
    quick: bool = False,
    progress: bool = True,
    publish: PublishRequest | None = None,
) -> SearchResult:
    """Try each precision of the imported model; keep every candidate's figures; mark smallest, fastest, Pareto.

    Raises:
        ExportError: no labelled ``--eval`` data, an unknown precision, bad input, or publishing failed.
    """
    if request.eval is None or request.label is None:
        raise ExportError("a search judges accuracy: pass --eval FILE --label COL with the imported model")
    unknown = [p for p in precisions if p not in PRECISION_STEPS]
    if unknown:
        raise ExportError(f"precision {unknown[0]!r} is not one of {', '.join(PRECISION_STEPS)}")
    if max_accuracy_drop < 0:
        raise ExportError(f"--max-accuracy-drop must be 0 or more points, got {max_accuracy_drop}")
    request = dataclasses.replace(request, task="classification")
    if publish is not None:
        check_repository(Path(publish.repository))
        for name in precisions:
            variant_model_name(publish.name or request.name, name)
    steps = {name: PRECISION_STEPS[name] for name in ("fp32", *precisions)}
    with tempfile.TemporaryDirectory(prefix="modelpress-search-") as tmp, Progress(disable=not progress) as bar:
        task = bar.add_task(f"reading {request.source.name}", total=len(precisions) + 2)
        prepared = prepare(request, Path(tmp), steps)
        bar.advance(task)
        made: dict[str, tuple[Path, str, list[Any], dict[str, Any]]] = {}
        baseline = Candidate(name="baseline-fp32", steps=steps["fp32"])
        _run(baseline, prepared, request, threads, quick, made)
        if baseline.status != "ok":
            raise ExportError(f"the fp32 baseline could not be made: {baseline.reason}")
        result = SearchResult(str(request.source.resolve()), max_accuracy_drop, threads, baseline, None)
        bar.advance(task)
        for name in precisions:
            bar.update(task, description=name)
            candidate = Candidate(name=name, steps=steps[name])
            _run(candidate, prepared, request, threads, quick, made)
            result.candidates.append(candidate)
            bar.advance(task)
        _judge(result)
        if publish is not None:
            _publish(result, made, prepared, PublishRequest(publish.repository, publish.name or request.name,
                                                            publish.pareto))  # fmt: skip
    return result


def _run(
    candidate: Candidate, prepared: Prepared, request: ImportRequest, threads: int, quick: bool,
    made: dict[str, tuple[Path, str, list[Any], dict[str, Any]]],
) -> None:  # fmt: skip
    started = time.perf_counter()
    try:
        model_path, precision, records = run_steps(candidate.name, candidate.steps, prepared)
        quality = measure(run_variant(model_path, prepared.evidence), prepared.evidence, prepared.task)
        # a wrong fp32 conversion is a failed candidate, never a winner; the tolerance is the search's own
        judge_variant(candidate.name, precision, quality, prepared.task, request.verify, force=True)
        candidate.precision = precision
        candidate.onnx_bytes, candidate.gzip_bytes = onnx_bytes(model_path), gzip_bytes(model_path)
        candidate.accuracy, candidate.macro_f1 = quality["accuracy"], quality["macro_f1"]
        candidate.accuracy_drop_points = round(100 * quality["accuracy_drop"], 4)
        candidate.top1_agreement = quality["top1_agreement"]
        candidate.latency_p50_ms = _batch1_ms(model_path, prepared, threads, quick)
        made[candidate.name] = (model_path, precision, records, quality)
        candidate.status = "ok"
    # A candidate's failure (a quantizer refusing the graph, a wrong conversion) is a result, not a stop.
    except Exception as e:
        candidate.status = "failed"
        candidate.reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:400]
    candidate.seconds = round(time.perf_counter() - started, 3)


def _batch1_ms(model_path: Path, prepared: Prepared, threads: int, quick: bool) -> float:
    session = ort_session(model_path, threads)
    feeds = {name: array[:1] for name, array in prepared.evidence.feeds[0].items()}
    return time_it(ort_callable(session, feeds), QUICK if quick else STANDARD).p50_ms


def _publish(
    result: SearchResult, made: dict[str, tuple[Path, str, list[Any], dict[str, Any]]], prepared: Prepared,
    request: PublishRequest,
) -> None:  # fmt: skip
    """Publish the chosen candidates in one atomic commit and note on each where it went."""
    from modelpress.export.chain import publish_all

    roles = to_publish(result, request.pareto)
    by_name = {c.name: c for c in result.candidates}
    built = []
    for name, marks in roles.items():
        model_path, precision, records, quality = made[name]
        info = {"roles": marks, "max_accuracy_drop_points": result.max_accuracy_drop_points,
                "latency_p50_ms": by_name[name].latency_p50_ms, "threads": result.threads}  # fmt: skip
        model_name = variant_model_name(str(request.name), name)
        lineage = [prepared.record, *records]
        built.append(built_variant(name, model_name, str(request.name), model_path, precision, lineage,
                                   {**quality, "search": info}, prepared))  # fmt: skip
    if not built:
        return
    try:
        published = publish_all(request.repository, built)
    except (OSError, ValueError) as e:
        raise ExportError(f"publishing the search's winners to {request.repository} failed: {e}") from e
    for item, done in zip(built, published, strict=True):
        by_name[item.variant].published = f"{done.name}/{done.version}"
