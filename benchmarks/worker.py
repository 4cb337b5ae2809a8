"""Measure one model in a fresh process, so its peak RSS is its own: ``python -m benchmarks.worker``.

Prints one JSON object: batch-1 latency percentiles, throughput at the given batch, RSS before loading
and peak RSS after measuring.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
from pathlib import Path

from benchmarks.processes import rss_bytes
from export.compare.runners import ort_callable, ort_session, synthetic_inputs, throughput_batch, torch_callable
from export.compare.timing import QUICK, STANDARD, measure, rows_per_second
from serving.manifest import read_manifest


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", choices=("ort", "torch"), required=True)
    parser.add_argument("--version-dir", type=Path, required=True, help="model version folder (inputs spec)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    budget = QUICK if args.quick else STANDARD
    rss_start = rss_bytes(os.getpid())
    manifest = read_manifest(args.version_dir)
    batch = throughput_batch(manifest, args.batch)
    single, batched = synthetic_inputs(manifest, 1), synthetic_inputs(manifest, batch)
    if args.kind == "ort":
        session = ort_session(args.version_dir / manifest.model_file, args.threads)
        run_one, run_batch = ort_callable(session, single), ort_callable(session, batched)
    else:
        from export.compare.torch_source import load_baseline

        module = load_baseline(manifest)  # the checkpoint, or a text model's recorded package / folder
        run_one = torch_callable(module, single, args.threads)
        run_batch = torch_callable(module, batched, args.threads)
    latency = measure(run_one, budget)
    throughput = rows_per_second(measure(run_batch, budget), batch)
    json.dump({"latency": latency.as_dict(), "throughput_rows_s": throughput, "batch": batch,
               "rss_start_bytes": rss_start, "peak_rss_bytes": _peak_rss_bytes()}, sys.stdout)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
