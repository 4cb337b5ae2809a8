"""Which execution provider each served model really runs on, and GPU vs CPU latency side by side.

    python -m modelpress.benchmarks.gpu_check --repository DIR [--models a,b] [--batch 1 32] [--runs 50]
    python -m modelpress.benchmarks.gpu_check --repository DIR --trt-fp16 --trt-engine-cache-dir /cache

For every model of the repository (its latest version), every GPU execution provider this onnxruntime offers
(TensorRT, CUDA; or ``--providers``) is asked for, through the server's own runtime (``serving/runtime``: the
same provider options, IOBinding and text tokenisation as ``modelpress serve``), and the providers the session
really got (``session.get_providers()``) are printed: ``onnxruntime-gpu`` lists CUDA as available on a machine
without a GPU and then quietly runs on CPU. Each model then runs ``--runs`` times per batch size on each
provider that held and on CPU, and a table gives p50 / p99 latency, rows per second and the speedup over CPU.

Without a GPU provider (the CPU build of onnxruntime) or when every session falls back to CPU, it says what it
skipped and why, and exits 0. A model that fails to load exits 1 after the table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from modelpress.serving.errors import ServingError
from modelpress.serving.manifest import ModelManifest, list_versions, read_manifest
from modelpress.serving.runtime.onnx import OnnxModel, RuntimeOptions, warmup_inputs
from modelpress.serving.runtime.providers import CPU_PROVIDER, GPU_PROVIDERS, ProviderConfig, ort_available


@dataclass
class Timing:
    model: str
    requested: str
    used: list[str]
    batch: int
    p50_ms: float
    p99_ms: float

    @property
    def rows_per_s(self) -> float:
        return self.batch / (self.p50_ms / 1e3) if self.p50_ms else 0.0


def latest_versions(repository: Path, only: list[str] | None) -> list[tuple[ModelManifest, Path]]:
    """(manifest, version folder) of each model's highest version, by name."""
    found = []
    for model_dir in sorted(p for p in repository.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if only and model_dir.name not in only:
            continue
        versions = list_versions(model_dir)
        if versions:
            folder = model_dir / str(max(versions))
            found.append((read_manifest(folder), folder))
    return found


def load(manifest: ModelManifest, folder: Path, config: ProviderConfig) -> OnnxModel:
    """The model on ``config``'s providers, as the server loads it (no warm-up: timing warms it)."""
    options = RuntimeOptions(providers=config, warmup_runs=0)
    if manifest.tokenizer is not None:
        from modelpress.serving.runtime.text_onnx import TextOnnxModel

        model: OnnxModel = TextOnnxModel(manifest, folder, options)
    else:
        model = OnnxModel(manifest, folder, options)
    model.load()
    return model


def time_model(model: OnnxModel, batch: int, runs: int) -> tuple[float, float]:
    """p50 and p99 milliseconds of ``runs`` predictions of ``batch`` rows, after 3 untimed ones."""
    feeds = warmup_inputs(model.inputs, batch)
    outputs = [o.name for o in model.outputs]
    for _ in range(3):
        model.predict(feeds, outputs)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        model.predict(feeds, outputs)
        samples.append((time.perf_counter() - started) * 1e3)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def batches_for(manifest: ModelManifest, wanted: list[int]) -> list[int]:
    """The batch sizes a model can take: only 1 unless its first dimension is dynamic."""
    dynamic = all(s.shape[:1] == [-1] for s in manifest.inputs)
    return wanted if dynamic else [1]


def check(args: argparse.Namespace) -> int:
    available, _ = ort_available()
    gpu = [p for p in (args.providers or GPU_PROVIDERS) if p in available]
    models = latest_versions(args.repository, args.models)
    if not models:
        print(f"error: no model versions in {args.repository}", file=sys.stderr)
        return 2
    if not gpu:
        wanted = args.providers or list(GPU_PROVIDERS)
        print(f"skipped: no GPU execution provider in this onnxruntime (wanted {wanted}, available {available}); "
              "install the gpu extra (onnxruntime-gpu) on a machine with an NVIDIA GPU")  # fmt: skip
        for manifest, _ in models:
            print(f"skipped: {manifest.name} v{manifest.version} on {', '.join(wanted)}")
        return 0
    base = ProviderConfig(trt_fp16=args.trt_fp16, trt_engine_cache_dir=args.trt_engine_cache_dir,
                          cuda_device_id=args.device_id)  # fmt: skip
    timings: list[Timing] = []
    failed = 0
    for manifest, folder in models:
        for provider in dict.fromkeys([*gpu, CPU_PROVIDER]):  # CPU last, once
            label = f"{manifest.name} v{manifest.version} on {provider}"
            try:
                model = load(manifest, folder, replace(base, requested=(provider,)))
            except ServingError as e:
                print(f"FAILED: {label}: {e.message}")
                failed += 1
                continue
            used = model.providers
            held = used[:1] == [provider]
            print(f"{label}: session runs on {used}{'' if held else '  (FELL BACK: GPU timing skipped)'}", flush=True)
            if held:
                for batch in batches_for(manifest, args.batch):
                    p50, p99 = time_model(model, batch, args.runs)
                    timings.append(Timing(manifest.name, provider, used, batch, p50, p99))
            model.unload()
    print()
    print(to_markdown(timings))
    return 1 if failed else 0


def to_markdown(timings: list[Timing]) -> str:
    cpu = {(t.model, t.batch): t for t in timings if t.requested == CPU_PROVIDER}
    lines = ["| model | provider | batch | p50 ms | p99 ms | rows/s | vs CPU |", "|---|---|---|---|---|---|---|"]
    for t in timings:
        base = cpu.get((t.model, t.batch))
        speedup = f"{base.p50_ms / t.p50_ms:.2f}x" if base and t.p50_ms else "-"
        lines.append(f"| {t.model} | {t.requested} | {t.batch} | {t.p50_ms:.3f} | {t.p99_ms:.3f} | "
                     f"{t.rows_per_s:.0f} | {speedup} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--models", type=lambda s: [m for m in s.split(",") if m], help="comma-separated names")
    parser.add_argument("--providers", type=lambda s: [p for p in s.split(",") if p],
                        help="providers to compare with CPU (default: TensorRT, CUDA where available)")  # fmt: skip
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--device-id", type=int, default=0)
    parser.add_argument("--trt-fp16", action="store_true", help="TensorRT: allow fp16 layers")
    parser.add_argument("--trt-engine-cache-dir", type=Path, help="TensorRT: keep built engines here")
    args = parser.parse_args()
    if not args.repository.is_dir():
        print(f"error: --repository {args.repository} is not a directory", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(check(args))


if __name__ == "__main__":
    main()
