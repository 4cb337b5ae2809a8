"""Where an ONNX model's time goes: ONNX Runtime's profiler, summed per operator type and per node.

    python -m modelpress.benchmarks.ort_profile MODEL.onnx [--threads 2 --batch 8 --seq 64 --runs 20]
    python -m modelpress.benchmarks.ort_profile TEACHER.onnx STUDENT.onnx   # side by side, with the ratio per operator

Answers "which kernels run and which take the time" (e.g. whether ORT fused the int8 graph into
``DynamicQuantizeMatMul`` / ``QAttention``, and what the fp32 nodes left around them cost). The model is a text
encoder fed token ids and a full attention mask (``input_ids``, ``attention_mask``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Breakdown:
    """Mean milliseconds per run: by operator type (with node counts) and by node, and the whole run."""

    runs: int
    by_op: dict[str, float]
    nodes_per_op: dict[str, int]
    by_node: dict[str, float]
    run_ms: float = 0.0  # ORT's own ``model_run`` span: kernels plus what lies between them (scheduling, copies)

    @property
    def total_ms(self) -> float:
        return sum(self.by_op.values())

    def markdown(self, top: int = 8) -> str:
        lines = ["| operator | nodes | ms / run | share |", "|---|---:|---:|---:|"]
        for op, ms in sorted(self.by_op.items(), key=lambda kv: -kv[1]):
            lines.append(f"| {op} | {self.nodes_per_op[op]} | {ms:.2f} | {ms / self.total_ms:.0%} |")
        lines += [
            "",
            f"Kernel time {self.total_ms:.2f} ms / run ({self.run_ms:.2f} ms per model_run) over {self.runs} runs. "
            "Slowest nodes:",
        ]
        for node, ms in sorted(self.by_node.items(), key=lambda kv: -kv[1])[:top]:
            lines.append(f"- {node}: {ms:.2f} ms")
        return "\n".join(lines)


def side_by_side(first: Breakdown, second: Breakdown, names: tuple[str, str] = ("first", "second")) -> str:
    """Both breakdowns per operator type, with how many times longer the first one's operator takes.

    Answers "why is a model with half the layers not twice as fast": operators whose ratio stays near 1 are
    fixed costs (embeddings, pooling), and an operator only one model runs (an fp32 fallback) shows up alone.
    """
    a, b = names
    lines = [
        f"| operator | {a} nodes | {a} ms | {b} nodes | {b} ms | {a} / {b} |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    ops = sorted(
        set(first.by_op) | set(second.by_op), key=lambda op: -max(first.by_op.get(op, 0), second.by_op.get(op, 0))
    )
    for op in ops:
        x, y = first.by_op.get(op, 0.0), second.by_op.get(op, 0.0)
        ratio = f"{x / y:.2f}" if y > 0 else "–"
        counts = first.nodes_per_op.get(op, 0), second.nodes_per_op.get(op, 0)
        lines.append(f"| {op} | {counts[0]} | {x:.2f} | {counts[1]} | {y:.2f} | {ratio} |")
    lines.append(
        f"| **kernels** | | {first.total_ms:.2f} | | {second.total_ms:.2f} | {first.total_ms / second.total_ms:.2f} |"
    )
    lines.append(
        f"| **model_run** | | {first.run_ms:.2f} | | {second.run_ms:.2f} | {first.run_ms / second.run_ms:.2f} |"
    )
    return "\n".join(lines)


def text_feeds(batch: int, seq: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Token ids from the ordinary-word range of a BERT vocabulary and a full attention mask."""
    rng = np.random.default_rng(seed)
    return {
        "input_ids": rng.integers(2000, 8000, (batch, seq)).astype(np.int64),
        "attention_mask": np.ones((batch, seq), np.int64),
    }


def profile(
    model_path: Path, feeds: dict[str, np.ndarray], *, threads: int = 2, runs: int = 20, warmup: int = 3
) -> Breakdown:
    """Run ``model_path`` ``warmup + runs`` times and sum the kernel times of the last ``runs`` runs."""
    return profile_interleaved([model_path], feeds, threads=threads, runs=runs, warmup=warmup)[0]


def profile_interleaved(
    model_paths: list[Path], feeds: dict[str, np.ndarray], *, threads: int = 2, runs: int = 20, warmup: int = 3
) -> list[Breakdown]:
    """Profile several models in turns (one run of each, then again), so a change of load hits all alike.

    This VM's speed varies by tens of percent within minutes; profiling one model after the other would put
    that variation into the ratio between them.
    """
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="modelpress-profile-") as tmp:
        sessions = []
        for i, model_path in enumerate(model_paths):
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(tmp) / f"ort-{i}")
            session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
            names = {i.name for i in session.get_inputs()}
            sessions.append((session, {k: v for k, v in feeds.items() if k in names}))
        for _ in range(warmup + runs):
            for session, own in sessions:
                session.run(None, own)
        return [_breakdown(json.loads(Path(s.end_profiling()).read_text()), runs, warmup) for s, _ in sessions]


def _breakdown(events: list[dict], runs: int, warmup: int) -> Breakdown:
    spans = sorted((e["ts"], e["dur"]) for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    cutoff = spans[warmup][0] if len(spans) > warmup else 0  # the first runs allocate and pick kernels
    measured = [dur for ts, dur in spans if ts >= cutoff]
    by_op: Counter[str] = Counter()
    by_node: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time") and event["ts"] >= cutoff:
            op = event["args"]["op_name"]
            by_op[op] += event["dur"]
            by_node[event["name"].removesuffix("_kernel_time")] += event["dur"]
            counts[op] += 1
    return Breakdown(
        runs=runs,
        by_op={op: us / runs / 1000 for op, us in by_op.items()},
        nodes_per_op={op: n // runs for op, n in counts.items()},
        by_node={node: us / runs / 1000 for node, us in by_node.items()},
        run_ms=sum(measured) / max(1, len(measured)) / 1000,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, nargs="+", help="one model, or two to compare side by side")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    if len(args.model) > 2:
        raise SystemExit("error: give one model, or two to compare")
    for model in args.model:
        if not model.is_file():
            raise SystemExit(f"error: {model} is not a file")
    feeds = text_feeds(args.batch, args.seq)
    found = profile_interleaved(args.model, feeds, threads=args.threads, runs=args.runs)
    if len(found) == 1:
        print(found[0].markdown())
    else:
        print(
            side_by_side(found[0], found[1], names=(args.model[0].parent.parent.name, args.model[1].parent.parent.name))
        )


if __name__ == "__main__":
    main()
