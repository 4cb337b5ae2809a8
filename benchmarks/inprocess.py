"""In-process benchmark: PyTorch eager fp32 (the baseline) and every ONNX variant.

Each model runs in its own process on the same inputs, with ratios against the baseline.
"""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from modelpress.export.compare.build import family_of
from modelpress.export.compare.runners import is_text
from modelpress.export.compare.torch_source import baseline_source
from modelpress.export.compare.worker import WorkerError, measure_in_fresh_process
from modelpress.serving.manifest import ManifestError, ModelManifest, list_models, list_versions, read_manifest


def _worker(args: list[str]) -> dict:
    """One model measured in its own process (:mod:`modelpress.export.compare.worker`), or the error that stopped it."""
    try:
        return measure_in_fresh_process(args)
    except WorkerError as e:
        return {"error": str(e)}


def _has_baseline(manifest: ModelManifest, source: str | None) -> bool:
    """A checkpoint folder exists, or a text model records the encoder it was imported from (loaded by name)."""
    return bool(source) and (is_text(manifest) or Path(source).is_dir())


def bench_repository(repository: Path, *, threads: int = 2, batch: int = 64, quick: bool = False) -> dict:
    """Measure every model of ``repository`` (latest versions) and its family's PyTorch baseline."""
    common = ["--threads", str(threads), "--batch", str(batch), *(["--quick"] if quick else [])]
    models: list[dict] = []
    baselines: dict[str, dict] = {}
    jobs: list[tuple[str, Path]] = []
    for name in list_models(repository):
        version_dir = repository / name / str(list_versions(repository / name)[-1])
        jobs.append((name, version_dir))
    for name, version_dir in tqdm(jobs, desc="in-process benchmark", unit="model"):
        try:
            manifest = read_manifest(version_dir)
        except ManifestError as e:
            models.append({"model": name, "error": str(e)})
            continue
        family = family_of(manifest)
        source = baseline_source(manifest)
        if family not in baselines and _has_baseline(manifest, source):
            baselines[family] = {
                "checkpoint": source,
                **_worker(["--kind", "torch", "--version-dir", str(version_dir), *common]),
            }
        result = _worker(["--kind", "ort", "--version-dir", str(version_dir), *common])
        models.append({"model": name, "family": family, "precision": manifest.precision, **result})
    for row in models:
        base = baselines.get(row.get("family", ""))
        if base and "latency" in base and "latency" in row:
            row["speedup_p50_vs_torch"] = base["latency"]["p50_ms"] / row["latency"]["p50_ms"]
            row["throughput_vs_torch"] = row["throughput_rows_s"] / base["throughput_rows_s"]
    return {"threads": threads, "batch": batch, "quick": quick, "baselines": baselines, "models": models}


def to_markdown(result: dict) -> str:
    lines = ["| model | p50 ms b1 | p90 ms | p99 ms | rows/s b{b} | peak RSS MiB | p50 speedup vs torch | "
             "throughput vs torch |".format(b=result["batch"]), "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    rows = [{"model": f"PyTorch eager fp32 [{family}]", **base} for family, base in result["baselines"].items()]
    for row in [*rows, *result["models"]]:
        if "latency" not in row:
            lines.append(f"| {row['model']} | {row.get('error', 'not measured')} | | | | | | |")
            continue
        lat = row["latency"]
        speed = row.get("speedup_p50_vs_torch")
        thr = row.get("throughput_vs_torch")
        lines.append(
            f"| {row['model']} | {lat['p50_ms']:.3f} | {lat['p90_ms']:.3f} | {lat['p99_ms']:.3f} | "
            f"{row['throughput_rows_s']:,.0f} | {row['peak_rss_bytes'] / 2**20:.0f} | "
            f"{'–' if speed is None else f'{speed:.1f}×'} | {'–' if thr is None else f'{thr:.1f}×'} |"
        )
    return "\n".join(lines) + "\n"
