r"""In-process ceiling of dynamic batching for a text model: what the compute threads alone gain by batching.

    python -m modelpress.benchmarks.batching_ceiling --repository DIR --model minilm-int8 [--window 16]

The served benchmark (:mod:`modelpress.benchmarks.mixed_lengths`) measures the whole server; this measures only
what its compute threads do, with the server's own runtime (``TextOnnxModel.predict``: tokenization, length
grouping, ``session.run``), on the same mixed-length texts. ``--window`` is how many texts are in flight at
once (the clients' concurrency); each of ``--parallel`` threads (the server's ``compute_threads``) takes its
share of them per run, as the batcher's concurrent batches do. Schemes:

- ``alone``: every text its own ``predict`` (what the server does with batching off);
- ``padded``: the thread's share as one batch padded to its longest text (batching without length grouping);
- ``groupedN``: that batch split into runs of similar length (``length_group_overhead_tokens`` N).

Each runs on one thread (``x1``, the whole window per batch) and on ``--parallel`` threads. Every thread
works through its own stream of texts with no barrier between threads, as the compute threads do. Sessions
have pools of their own with ``--intra`` threads, spinning off. Rounds alternate the schemes; texts/s per
round and the median ratio to ``alone`` on the same number of threads are printed as Markdown, then the cost
per row of one run at a few fixed shapes (``--cost-tokens``, ``--cost-rows``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from modelpress.benchmarks.mixed_lengths import TextLoad, add_text_load_arguments, text_load
from modelpress.serving.runtime.onnx import RuntimeOptions
from modelpress.serving.runtime.text_onnx import TextOnnxModel
from modelpress.serving.text import TextTokenizer


def load_model(load: TextLoad, intra: int, overhead: int | None) -> TextOnnxModel:
    """The load's model as the server runs it, with ``intra`` threads and length grouping at ``overhead``."""
    options = RuntimeOptions(intra_op_threads=intra, inter_op_threads=1, warmup_runs=1,
                             length_group_overhead_tokens=overhead)  # fmt: skip
    model = TextOnnxModel(load.manifest, load.version_dir, options)
    model.load()
    return model


def schemes(models: dict[str, TextOnnxModel], name: str, output: str) -> dict[str, Callable]:
    """Scheme label → function running one work unit (a list of texts) on the calling thread."""

    def column(texts: list[str]) -> dict[str, np.ndarray]:
        arr = np.empty(len(texts), dtype=object)
        arr[:] = texts
        return {name: arr}

    def alone(texts: list[str]) -> None:
        for text in texts:  # one text: nothing to pad or group
            models["padded"].predict(column([text]), [output])

    out: dict[str, Callable] = {"alone": alone}
    for key, model in models.items():
        out[key] = lambda texts, m=model: m.predict(column(texts), [output])
    return out


def throughput(work: Callable[[list[str]], None], texts: list[str], unit: int, threads: int, seconds: float) -> float:
    """Texts/s of ``threads`` threads each running ``work`` on its own stream of ``unit``-text slices.

    No barrier between the threads: like the server's compute threads, each takes its next batch as soon as its
    last one is done, so one thread's long texts do not leave the other idle.
    """
    done = [0] * threads
    deadline = time.perf_counter() + seconds

    def worker(i: int) -> None:
        at = i * unit
        while time.perf_counter() < deadline:
            part = [texts[(at + k) % len(texts)] for k in range(unit)]
            work(part)
            done[i] += unit
            at += threads * unit

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(done) / (time.perf_counter() - started)


def run(args: argparse.Namespace) -> dict[str, object]:
    load = text_load(args)
    manifest, version_dir, texts = load.manifest, load.version_dir, [t for t, _ in load.texts]
    models = {"padded": load_model(load, args.intra, None)}
    for overhead in args.overhead:
        models[f"grouped{overhead}"] = load_model(load, args.intra, overhead)
    table = schemes(models, manifest.inputs[0].name, manifest.outputs[0].name)
    plan = []  # (label, work, texts per unit, threads)
    for threads in sorted({1, args.parallel}):
        batch = max(1, args.window // threads)  # the window's share of each compute thread
        for key, work in table.items():
            plan.append((f"{key} x{threads}", work, batch, threads))
    for _, work, batch, _ in plan:
        work(texts[:batch])
    results: dict[str, list[float]] = {label: [] for label, *_ in plan}
    for round_no in range(args.rounds):
        for label, work, batch, threads in plan:
            rate = throughput(work, texts, batch, threads, args.seconds)
            results[label].append(rate)
            print(f"round {round_no + 1} {label}: {rate:.0f} texts/s", file=sys.stderr, flush=True)
    costs = {}
    if args.cost_tokens:
        ids = TextTokenizer(version_dir / manifest.tokenizer.file, 1 << 16).encode([" ".join(texts)]).input_ids[0]
        costs = run_costs(models["padded"], ids, args.cost_tokens, args.cost_rows)
    return {"intra": args.intra, "costs": costs, "window": args.window, "results": results}


def run_costs(
    model: TextOnnxModel, token_ids: np.ndarray, lengths: list[int], rows: list[int], repeats: int = 20
) -> dict[str, float]:
    """Milliseconds per row of one ``session.run`` on ``[rows, length]`` token tensors (best of 3 × ``repeats``).

    What batching can save inside ONNX Runtime: if a row costs as much in a batch of 16 as alone, joining texts
    of one length gains nothing there. Rows hold ``token_ids`` (a real text's), repeated to the length.
    """
    session = model._session  # the runtime's own session: the cost the compute threads pay per run
    names = [a.name for a in session.get_inputs()]
    output = [session.get_outputs()[0].name]
    out = {}
    for length in lengths:
        for n in rows:
            feeds = {name: np.full((n, length), 1 if name == "attention_mask" else 0, dtype=np.int64) for name in names}
            feeds["input_ids"] = np.tile(np.resize(token_ids, length), (n, 1)).astype(np.int64)
            session.run(output, feeds)
            best = math.inf
            for _ in range(3):
                started = time.perf_counter()
                for _ in range(repeats):
                    session.run(output, feeds)
                best = min(best, (time.perf_counter() - started) / repeats)
            out[f"{n}x{length}"] = best * 1e3 / n
    return out


def costs_markdown(costs: dict[str, float], lengths: list[int], rows: list[int]) -> str:
    lines = ["| tokens | " + " | ".join(f"{n} row{'s' if n > 1 else ''}" for n in rows) + " |",
             "|---" * (len(rows) + 1) + "|"]  # fmt: skip
    for length in lengths:
        lines.append(f"| {length} | " + " | ".join(f"{costs[f'{n}x{length}']:.2f}" for n in rows) + " |")
    return "ms per row of one run (best of 3):\n\n" + "\n".join(lines)


def to_markdown(results: dict[str, list[float]]) -> str:
    lines = ["| scheme | texts/s by round | median | vs alone, same threads |", "|---|---|---|---|"]
    for label, rates in results.items():
        base = statistics.median(results["alone " + label.split()[-1]])
        median = statistics.median(rates)
        by_round = ", ".join(f"{r:.0f}" for r in rates)
        lines.append(f"| {label} | {by_round} | {median:.0f} | {median / base:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--window", type=int, default=16, help="texts in flight at once (the clients' concurrency)")
    parser.add_argument("--intra", type=int, default=1, help="ONNX Runtime intra-op threads per session")
    parser.add_argument("--parallel", type=int, default=2, help="threads of the parallel schemes (compute_threads)")
    parser.add_argument("--overhead", type=int, nargs="+", default=[16], help="length_group_overhead_tokens values")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4)
    add_text_load_arguments(parser)
    parser.add_argument("--cost-tokens", type=int, nargs="*", default=[5, 16, 32, 64, 128],
                        help="also time one run per row at these lengths (none: skip)")  # fmt: skip
    parser.add_argument("--cost-rows", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    out = run(args)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    print(to_markdown(out["results"]))
    if out["costs"]:
        print()
        print(costs_markdown(out["costs"], args.cost_tokens, args.cost_rows))


if __name__ == "__main__":
    main()
