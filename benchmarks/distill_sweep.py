"""Seed sweep of the distill pass: how robust is a student's test accuracy to the seed?

Runs the ``distill`` export pass (exactly as a recipe would, one seed at a time) on a checkpoint for each
setting and seed, and prints, per setting, test accuracy, validation accuracy and agreement with the teacher,
with the mean and the minimum over the seeds. Run it under the shared heavy-job lock::

    flock /tmp/modelpress-heavy.lock .venv/bin/python -m modelpress.benchmarks.distill_sweep CHECKPOINT \
        --setting '{"architecture": "cnn", "config": {"channels": [6, 12], "convs_per_block": 1,
                    "hidden": 0, "dropout": 0.0}, "temperature": 2.0, "alpha": 0.7, "mixup": 0.4,
                    "noise_std": 0.2, "epochs": 200}' --seeds 0 1 2 3 4 --threads 1 --json sweep.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def _accuracy(module: Any, x: Any, y: Any) -> tuple[float, Any]:
    import torch

    with torch.no_grad():
        pred = module(torch.as_tensor(x, dtype=torch.float32)).argmax(1).numpy()
    return float((pred == y).mean()), pred


def run_setting(checkpoint: Path, setting: dict[str, Any], seeds: list[int]) -> list[dict[str, Any]]:
    """One row per seed: test/val accuracy, teacher agreement on the test split, parameters, seconds."""
    from modelpress.export.api import checkpoint_start
    from modelpress.export.compress.distill import held_out_probe, teacher_fidelity
    from modelpress.export.passes.compress import Distill, DistillPassConfig
    from modelpress.export.spec import parse_spec
    from modelpress.training.data import splits_for_checkpoint

    start = checkpoint_start(checkpoint, parse_spec(None))
    teacher, meta, ctx = start.handle.module, start.context.meta, start.context
    splits = splits_for_checkpoint(meta)
    _, teacher_test = _accuracy(teacher, splits.X_test, splits.y_test)
    probe = held_out_probe(splits.X_val)
    rows = []
    for seed in seeds:
        started = time.perf_counter()
        pass_ = Distill(DistillPassConfig(**{**setting, "seed": seed}))
        with tempfile.TemporaryDirectory() as out:
            student = pass_.run(start.handle, Path(out), ctx).model.module
        test, pred = _accuracy(student, splits.X_test, splits.y_test)
        val, _ = _accuracy(student, splits.X_val, splits.y_val)
        fidelity = teacher_fidelity(student, teacher, probe)
        rows.append({"seed": seed, "test": test, "val": val, "agree": float((pred == teacher_test).mean()),
                     **fidelity,
                     "parameters": sum(p.numel() for p in student.parameters()),
                     "seconds": round(time.perf_counter() - started, 1)})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--setting", action="append", required=True, help="a distill pass config as JSON")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="append one JSON line per setting to this file")
    args = parser.parse_args()

    import torch

    from modelpress.export.api import _load

    torch.set_num_threads(args.threads)
    teacher, meta = _load(args.checkpoint)
    from modelpress.training.data import splits_for_checkpoint

    splits = splits_for_checkpoint(meta)
    base, _ = _accuracy(teacher.eval(), splits.X_test, splits.y_test)
    for raw in args.setting:
        setting = json.loads(raw)
        rows = run_setting(args.checkpoint, setting, args.seeds)
        drops = [100 * (base - r["test"]) for r in rows]
        summary = {"setting": setting, "teacher_test": base, "rows": rows,
                   "mean_drop_points": round(statistics.mean(drops), 3), "max_drop_points": round(max(drops), 3),
                   "mean_test": statistics.mean(r["test"] for r in rows),
                   "min_test": min(r["test"] for r in rows)}  # fmt: skip
        print(json.dumps({k: v for k, v in summary.items() if k != "rows"}), flush=True)
        if args.json:
            with args.json.open("a") as f:
                f.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
