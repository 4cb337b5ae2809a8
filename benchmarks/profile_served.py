"""Where a served request's time goes: py-spy samples our server while wrk drives it.

    python -m modelpress.benchmarks.profile_served --repository DIR --model digits --concurrency 32 --seconds 10

Starts our server (one uvicorn worker, as the served benchmark does), runs wrk at one concurrency level for
``seconds`` and samples the server for most of that time with ``py-spy record --format raw`` (collapsed
stacks, every thread, native frames off). Prints the wrk figures and the frames with the largest share of
samples, by own time and by inclusive time, and writes the raw stacks (for a flame graph) beside.
py-spy needs ptrace rights (root, or kernel.yama.ptrace_scope 0).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from modelpress.benchmarks.loadgen import StepResult, run_wrk
from modelpress.benchmarks.processes import free_port, running_server
from modelpress.benchmarks.served import SweepConfig, latest_manifest, modelpress_target, workload_for


def top_frames(collapsed: str, count: int = 25) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """(own, inclusive) shares of samples per frame from py-spy's raw output (``a;b;c N`` lines)."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        n = int(samples)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    total = max(total, 1)
    return ([(f, n / total) for f, n in own.most_common(count)],
            [(f, n / total) for f, n in inclusive.most_common(count)])  # fmt: skip


def profile(repository: Path, model: str, *, concurrency: int, seconds: int, batching: bool, kind: str,
            out: Path) -> tuple[StepResult, str]:  # fmt: skip
    """Run wrk against our server and py-spy on it at once; the wrk result and the collapsed stacks."""
    # beside this interpreter first: the project's .venv/bin need not be on PATH
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        raise SystemExit("error: py-spy not found (pip install py-spy; the dev extra has it)")
    config = SweepConfig(concurrencies=(concurrency,), duration=seconds, warmup=1)
    found = latest_manifest(repository, model)
    if found is None:
        raise SystemExit(f"error: --model {model!r}: not in {repository}")
    workload = workload_for(model, found.inputs[0], found.outputs[0].name)
    target = modelpress_target(repository, [workload], batching=batching, config=config)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    results: list[StepResult] = []
    with running_server(target.argv(port), port, env=target.env, log=out.with_suffix(".log")) as proc:
        run_wrk(base, workload.payloads[kind], concurrency=concurrency, seconds=1)  # warm-up
        load = threading.Thread(target=lambda: results.append(
            run_wrk(base, workload.payloads[kind], concurrency=concurrency, seconds=seconds)))  # fmt: skip
        load.start()
        sample_s = str(max(1, seconds - 1))
        subprocess.run([py_spy, "record", "--format", "raw", "--nonblocking", "-r", "200", "-d", sample_s,
                        "-p", str(proc.pid), "-o", str(out)], check=True, capture_output=True)  # fmt: skip
        load.join()
    return results[0], out.read_text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--model", default="digits")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--payload", choices=("json", "binary"), default="json")
    parser.add_argument("--no-batching", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/profile.txt"))
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result, collapsed = profile(args.repository, args.model, concurrency=args.concurrency, seconds=args.seconds,
                                batching=not args.no_batching, kind=args.payload, out=args.out)  # fmt: skip
    print(f"wrk: {result.throughput_rps:,.0f} req/s, p50 {result.p50_ms} ms, p99 {result.p99_ms} ms, "
          f"errors {result.errors}")  # fmt: skip
    own, inclusive = top_frames(collapsed)
    for title, rows in (("own time", own), ("inclusive time", inclusive)):
        print(f"\n{title}:")
        for frame, share in rows:
            print(f"  {100 * share:5.1f} %  {frame}")


if __name__ == "__main__":
    main()
