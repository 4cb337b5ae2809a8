"""The in-process batching ceiling: threads without a barrier, every scheme run on a real text model."""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import pytest

from modelpress.benchmarks.batching_ceiling import costs_markdown, run, throughput, to_markdown


def test_each_thread_works_through_its_own_slices_without_waiting_for_the_other():
    texts = [f"t{i}" for i in range(8)]
    seen: dict[str, list[tuple[str, ...]]] = {}

    def work(part: list[str]) -> None:
        seen.setdefault(threading.current_thread().name, []).append(tuple(part))
        time.sleep(0.02 if part[0] in ("t0", "t4") else 0.001)  # the thread starting at t0 is the slow one

    rate = throughput(work, texts, unit=2, threads=2, seconds=0.2)
    slow, fast = sorted(seen.values(), key=len)
    assert {p[0] for p in slow} <= {"t0", "t4"}  # thread 0: slices 0, 2, 4... of 2 texts
    assert {p[0] for p in fast} <= {"t2", "t6"}
    assert all(len(p) == 2 for p in slow + fast)
    assert len(fast) > 3 * len(slow)  # the fast thread did not wait for the slow one
    assert rate == pytest.approx(2 * (len(slow) + len(fast)) / 0.2, rel=0.5)


def test_every_scheme_and_the_run_costs_on_a_text_model(tmp_path: Path):
    pytest.importorskip("onnxruntime")
    from tests.serving.models import publish_encoder

    publish_encoder(tmp_path)
    args = argparse.Namespace(
        repository=tmp_path, model="encoder", window=4, intra=1, parallel=2, overhead=[16], rounds=1,
        seconds=0.05, texts=8, min_tokens=3, max_tokens=12, seed=0, cost_tokens=[4, 8], cost_rows=[1, 2],
    )  # fmt: skip
    out = run(args)
    results = out["results"]
    assert set(results) == {f"{s} x{n}" for s in ("alone", "padded", "grouped16") for n in (1, 2)}
    assert all(len(rates) == 1 and rates[0] > 0 for rates in results.values())
    assert set(out["costs"]) == {"1x4", "2x4", "1x8", "2x8"}
    assert all(ms > 0 for ms in out["costs"].values())
    table = to_markdown(results)
    assert "| alone x2 |" in table
    assert "1.00x |" in table
    assert "| 8 |" in costs_markdown(out["costs"], [4, 8], [1, 2])
