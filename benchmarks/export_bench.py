"""Export benchmark: size, batch-1 latency and accuracy of the digits variants, side by side in one process.

    python benchmarks/export_bench.py --checkpoint runs/digits        # an existing checkpoint
    python benchmarks/export_bench.py --recipe recipes/digits.yaml    # train it first (into --workdir)

Exports fp32, fp16 and int8 with the recipe's export section into a temporary repository, then times
PyTorch eager fp32 and ONNX Runtime on each variant with the same thread count, interleaving the
runners round by round so load from other processes hits all of them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def machine(threads: int) -> dict[str, object]:
    cpu, flags = "unknown", []
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].split()
    simd = [f for f in flags if f.startswith(("avx", "fma", "sse4", "amx")) or f in ("vnni", "avx512_vnni")]
    return {"nproc": os.cpu_count(), "cpu": cpu, "simd_flags": simd, "threads": threads,
            "python": platform.python_version()}  # fmt: skip


def per_call_ms(fn: Callable[[], object], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) * 1000 / calls


def interleaved_latency(runners: dict[str, Callable[[], object]], rounds: int, calls: int) -> dict[str, float]:
    """Median over ``rounds`` of the mean per-call time of ``calls`` calls, runners alternating each round."""
    for fn in runners.values():
        per_call_ms(fn, 20)  # warm-up: allocations, ORT's first-run graph work
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, fn in runners.items():
            samples[name].append(per_call_ms(fn, calls))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="checkpoint folder to export")
    source.add_argument("--recipe", type=Path, help="train this recipe first")
    parser.add_argument("--workdir", type=Path, default=Path("modelpress-work"), help="where --recipe trains")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    from modelpress.export.api import export_checkpoint
    from modelpress.export.data import eval_data_for_checkpoint
    from modelpress.training.checkpoint import load_checkpoint

    if args.recipe is not None:
        from modelpress.training.api import train_recipe
        from modelpress.training.recipe import load_recipe

        recipe = load_recipe(args.recipe)
        args.checkpoint = train_recipe(recipe, args.workdir / f"bench-{int(time.time())}")
    module, meta = load_checkpoint(args.checkpoint)
    data = eval_data_for_checkpoint(meta)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
        published = export_checkpoint(args.checkpoint, Path(tmp), "digits", spec=meta.recipe.get("export"),
                                      data=data, progress=False)  # fmt: skip
        sample = data.test_x[:1]
        x_torch = torch.from_numpy(sample)

        def eager() -> object:
            with torch.inference_mode():
                return module(x_torch)

        runners: dict[str, Callable[[], object]] = {"pytorch-eager-fp32": eager}
        rows = {}
        for item in published:
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(str(item.path / "model.onnx"), options, providers=["CPUExecutionProvider"])
            runners[item.name] = lambda s=session: s.run(None, {"input": sample})
            rows[item.name] = {
                "precision": item.manifest.precision,
                "onnx_bytes": item.manifest.size.onnx_bytes,
                "accuracy": item.manifest.quality["accuracy"],
                "top1_agreement": item.manifest.quality["top1_agreement"],
                "max_abs_diff": item.manifest.quality["max_abs_diff"],
                "providers": session.get_providers(),
            }
        latency = interleaved_latency(runners, args.rounds, args.calls)

    reference_accuracy = published[0].manifest.quality["reference_accuracy"]
    fp32 = rows["digits"]
    report = {
        "machine": machine(args.threads),
        "checkpoint": str(args.checkpoint),
        "test_samples": len(data.test_x),
        "pytorch": {"accuracy": reference_accuracy, "latency_ms_batch1": latency["pytorch-eager-fp32"]},
        "variants": {name: {**row, "latency_ms_batch1": latency[name]} for name, row in rows.items()},
        "int8_size_ratio": fp32["onnx_bytes"] / rows["digits-int8"]["onnx_bytes"],
        "ort_fp32_speedup_vs_eager": latency["pytorch-eager-fp32"] / latency["digits"],
        "int8_accuracy_drop_points": 100 * (reference_accuracy - rows["digits-int8"]["accuracy"]),
    }
    print(markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def markdown(report: dict) -> str:
    eager = report["pytorch"]
    lines = [
        "| runner | bytes | accuracy | top-1 agreement | max abs diff | latency batch 1 (ms) | speedup vs eager |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| PyTorch eager fp32 | – | {eager['accuracy']:.4f} | – | – | {eager['latency_ms_batch1']:.4f} | 1.00× |",
    ]
    for name, row in report["variants"].items():
        speedup = eager["latency_ms_batch1"] / row["latency_ms_batch1"]
        lines.append(
            f"| ORT {name} | {row['onnx_bytes']:,} | {row['accuracy']:.4f} | {100 * row['top1_agreement']:.2f}% | "
            f"{row['max_abs_diff']:.2g} | {row['latency_ms_batch1']:.4f} | {speedup:.2f}× |"
        )
    lines += [
        "",
        f"int8 size ratio (fp32 ONNX / int8 ONNX): {report['int8_size_ratio']:.2f}×; "
        f"ORT fp32 vs PyTorch eager at batch 1: {report['ort_fp32_speedup_vs_eager']:.2f}×; "
        f"int8 accuracy drop: {report['int8_accuracy_drop_points']:.2f} points "
        f"({report['test_samples']} test samples).",
        f"machine: {json.dumps(report['machine'])}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
