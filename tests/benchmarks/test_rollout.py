"""The rollout benchmark, run short: it measures real rollouts and idle polling against moto on loopback."""

from __future__ import annotations

import json
import os

import pytest

from modelpress.benchmarks import rollout
from tests.serving.models import publish_classifier


@pytest.mark.slow
def test_the_rollout_benchmark_measures_rollouts_and_idle_polling(tmp_path, capsys):
    publish_classifier(tmp_path / "src")
    before = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    out = tmp_path / "rollout.json"
    code = rollout.main(["--model", str(tmp_path / "src" / "digits" / "1"), "--rollouts", "2", "--poll-interval",
                         "0.5", "--idle-models", "2", "--idle-seconds", "1", "--idle-intervals", "0.5",
                         "--out", str(out)])  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    assert len(result["rollout_seconds"]) == 2
    assert all(0 < s < 10 for s in result["rollout_seconds"])
    assert set(result["idle_cpu_seconds_per_minute"]) == {"off", "0.5s"}
    assert "rollout 2/2: v3 first served" in capsys.readouterr().out  # progress, and the third version came
    assert {k: v for k, v in os.environ.items() if k.startswith("AWS_")} == before  # the environment restored
