"""The short soak and overload run (about a minute): what `python -m modelpress.benchmarks.soak` checks."""

from __future__ import annotations

import json

import pytest

from modelpress.benchmarks import soak


def _short_soak(out_dir, capsys) -> tuple[int, str, dict]:
    out_dir.mkdir()
    code = soak.main(["--short", "--out", str(out_dir)])
    out = capsys.readouterr().out
    (path,) = out_dir.glob("soak-*-short.json")
    return code, out, json.loads(path.read_text())


@pytest.mark.slow
def test_short_soak_overload_and_recovery(tmp_path, capsys):
    # The criteria are timing criteria judged on whatever else shares the 2 cores: a second run, not a
    # looser limit, tells a real regression (fails twice) from one burst of foreign load (seen once in ~5 runs).
    code, out, report = _short_soak(tmp_path / "first", capsys)
    if code != 0:
        print(f"first short soak failed, running it once more:\n{out}")
        code, out, report = _short_soak(tmp_path / "second", capsys)
    assert code == 0, out
    assert report["failures"] == []
    assert report["soak"]["errors"] == 0
    assert report["soak"]["ok"] == report["soak"]["sent"] > 0
    assert report["rss_growth"] < soak.RSS_GROWTH_LIMIT
    assert report["overload"]["rejected_503"] > 0
    assert report["overload"]["rejected_without_retry_after"] == 0
    assert report["recovery"]["ok"] == report["recovery"]["sent"]
    assert "PASS" in out


def test_bad_arguments_are_one_line_exit_2(capsys):
    assert soak.main(["--load", "1.5"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_judge_names_each_failed_criterion():
    phase = {"errors": 0, "rejected_503": 0, "client_shed": 0, "rejected_without_retry_after": 0, "ok": 10,
             "p99_ms": 10.0, "p99_503_ms": None}  # fmt: skip
    report = {"soak": phase, "overload": dict(phase), "recovery": phase, "rss_growth": 0.2, "p99_drift": 1.0}
    failures = soak.judge(report)
    assert any("RSS grew" in f for f in failures)
    assert any("no request was refused with 503" in f for f in failures)
    assert len(failures) == 2
