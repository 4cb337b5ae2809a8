"""Comparison reports built in memory (no measurement): two families, a failed variant, a hostile model name."""

from __future__ import annotations

from modelpress.export.compare.schema import Report, TorchBaseline, VariantRow

MACHINE = {"cpu_model": "Test CPU @ 2.0GHz", "cpu_flags": ["avx2", "fma"], "logical_cpus": 2, "threads": 1,
           "python": "3.11.2", "platform": "Linux-test"}  # fmt: skip


def _digits(model: str, precision: str, size: int, accuracy: float, p50: float, **extra: object) -> VariantRow:
    return VariantRow(
        model=model, version=1, family="digits", is_baseline=model == "digits", precision=precision,
        task="classification", lineage=["onnx", "optimize", *([model.split("-", 1)[1]] if "-" in model else [])],
        onnx_bytes=size, gzip_bytes=size // 2, size_ratio=300_000 / size, accuracy=accuracy, latency_p50_ms=p50,
        latency_p99_ms=p50 * 2, throughput_rows_s=1000 / p50, speedup_vs_torch=0.2 / p50, **extra,
    )  # fmt: skip


def _text(model: str, precision: str, size: int, cosine: float, p50: float, **extra: object) -> VariantRow:
    return VariantRow(
        model=model, version=2, family="minilm", is_baseline=model == "minilm", precision=precision, task="embedding",
        lineage=["hf-onnx", *([precision] if precision != "fp32" else [])], onnx_bytes=size, gzip_bytes=size,
        size_ratio=90_000_000 / size, fidelity={"mean_cosine": cosine}, latency_p50_ms=p50, latency_p99_ms=p50 * 1.5,
        **extra,
    )  # fmt: skip


def sample_report() -> Report:
    rows = [
        _digits("digits", "fp32", 300_000, 0.985, 0.050, pareto=True),
        _digits("digits-int8", "int8", 90_000, 0.981, 0.060, pareto=True),
        _digits("digits-fp16", "fp16", 150_000, 0.978, 0.055),
        _digits("digits-student", "fp32", 40_000, 0.970, 0.020, pareto=True),
        _text("minilm", "fp32", 90_000_000, 1.0, 9.0, pareto=True),
        _text("minilm-int8", "int8", 23_000_000, 0.956, 5.0, pareto=True),
        VariantRow(model="digits-</script><b>x</b>", version=1, family="digits", is_baseline=False, precision="?",
                   task="?", lineage=[], status="failed", notes=["manifest.json: sha256 does not match"]),
    ]  # fmt: skip
    return Report(repository="demo/repository", threads=1, throughput_batch=64, machine=MACHINE, rows=rows,
                  baselines={"digits": TorchBaseline(latency_p50_ms=0.2, latency_p99_ms=0.4, throughput_rows_s=5e4,
                                                     throughput_batch=64)})  # fmt: skip


COMPARABLE = 6  # rows of sample_report() with a size and a quality figure
