import shutil
from pathlib import Path

import pytest

from modelpress.benchmarks.served import (
    BATCHING_OFF,
    BATCHING_ON,
    ECHO,
    SweepConfig,
    run_sweep,
    step_at,
    targets_for,
    to_markdown,
)
from modelpress.benchmarks.targets import check_targets
from modelpress.benchmarks.targets import to_markdown as targets_markdown
from tests.export.compare.tiny_repository import gemm_classifier, publish

needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (make tools installs it as root)")


@pytest.fixture
def tiny_repository(tmp_path: Path) -> Path:
    repository = tmp_path / "repository"
    publish(repository, "tiny", gemm_classifier(16, 8, 3, seed=0), accuracy=0.9)
    return repository


def test_plan_names_what_it_leaves_out(tiny_repository):
    config = SweepConfig(concurrencies=(1,), duration=1, warmup=0, server_cpus=(0,))
    targets, notes = targets_for(tiny_repository, ["tiny", "absent"], config)
    assert [t.label for t in targets] == [BATCHING_ON, BATCHING_OFF, ECHO]
    assert any("absent: not in" in n for n in notes)
    assert any("tiny: no PyTorch checkpoint" in n for n in notes)
    on, off = targets[0], targets[1]
    assert on.argv(1234)[:3] == ["taskset", "-c", "0"]
    assert on.argv(1234)[-2:] == ["--port", "1234"]
    assert off.env["MODELPRESS_DYNAMIC_BATCHING"] == "false"
    assert "MODELPRESS_MAX_BATCH_SIZE" not in on.env
    assert on.kinds == ("json", "binary")
    assert targets[2].kinds == ("json",)
    assert targets_for(tiny_repository, ["absent"], config)[0] == []


@needs_wrk
@pytest.mark.slow
def test_sweep_drives_every_server_and_reads_its_split(tiny_repository, tmp_path):
    config = SweepConfig(concurrencies=(1, 4), duration=1, warmup=1, threads=1)
    targets, _ = targets_for(tiny_repository, ["tiny"], config)
    sweep = run_sweep(targets, config, tmp_path)
    assert len(sweep["load_average_start"]) == 3
    assert len(sweep["load_average_end"]) == 3
    results = sweep["results"]
    assert [r["target"] for r in results] == [BATCHING_ON, BATCHING_OFF, ECHO]
    for result in results:
        kinds = ("json", "binary") if result["target"] != ECHO else ("json",)
        assert [(s["payload"], s["concurrency"]) for s in result["steps"]] == [(k, c) for k in kinds for c in (1, 4)]
        assert result["rss_ready_bytes"] > 10 * 2**20
        for step in result["steps"]:
            assert step["errors"] == 0, step
            assert step["throughput_rps"] > 0
            assert step["p50_ms"] <= step["p99_ms"]
    on = step_at(results, BATCHING_ON, "tiny", 4, "binary")
    assert on["server"]["compute_ms"] > 0
    assert on["server"]["mean_batch_rows"] >= 1
    # the split counts only the measured step: about as many server requests as wrk answers
    assert on["server"]["batches"] * on["server"]["mean_batch_rows"] == pytest.approx(on["requests"], rel=0.05)
    assert step_at(results, BATCHING_OFF, "tiny", 4)["server"]["mean_batch_rows"] == 1.0
    assert step_at(results, ECHO, "tiny", 1)["server"] == {}
    table = to_markdown(results)
    assert "**tiny**" in table
    assert f"| {ECHO} | json | 4 |" in table
    checks = {c.target: c for c in check_targets(results, digits="tiny", text="absent")}
    assert set(checks) == {"tiny c=1 batching adds <= its queue delay (0.5 ms) to p50"}
    assert "| target | measured | met |" in targets_markdown(list(checks.values()))
