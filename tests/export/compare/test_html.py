"""The HTML report as a file: self-contained, carrying the report's JSON safely; and the CLI that writes it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from modelpress.export.compare.html import to_html
from modelpress.export.compare.schema import Report
from tests.export.compare.reports import sample_report


def _embedded(page: str) -> Report:
    data = re.search(r'<script id="report-data" type="application/json">(.*?)</script>', page, re.S)
    assert data is not None
    return Report.model_validate(json.loads(data.group(1)))


def test_the_report_is_one_file_that_loads_nothing_from_elsewhere() -> None:
    page = to_html(sample_report())
    assert page.startswith("<!doctype html>")
    assert not re.search(r"""(src|href)\s*=\s*["'](?!#)""", page)  # no script, style or image from anywhere
    assert "https://" not in page
    assert "function sorted" in page  # the script is inline
    assert ".plots" in page  # and so are the styles


def test_the_embedded_json_is_the_report_and_a_model_name_cannot_break_out_of_it() -> None:
    report = sample_report()
    page = to_html(report)
    assert _embedded(page) == report
    assert page.count("</script>") == 2  # the data's and the code's own: the hostile name's is escaped
    assert "<b>x</b>" not in page


@pytest.mark.parametrize(
    ("name", "message"), [("report.txt", "expected a .html"), ("nowhere/r.html", "does not exist")]
)
def test_compare_html_refuses_a_bad_file_name(tmp_path: Path, name: str, message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "modelpress", "compare", str(tmp_path), "--html", name],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr


def test_an_empty_repository_gets_a_report_that_says_so_and_the_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    out = tmp_path / "report.html"
    result = subprocess.run(
        [sys.executable, "-m", "modelpress", "compare", str(tmp_path / "empty"), "--html", str(out)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "no models found" in result.stderr
    assert _embedded(out.read_text()).rows == []  # the page then says "No comparable models" (browser test)


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelpress", "compare", *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd)  # fmt: skip


def test_a_saved_report_renders_without_measuring_again(tmp_path: Path) -> None:
    report = sample_report()
    saved = tmp_path / "r.json"
    saved.write_text(report.model_dump_json())
    result = _cli("--from-json", str(saved), "--html", str(tmp_path / "r.html"), "--csv", str(tmp_path / "r.csv"))
    assert result.returncode == 0, result.stderr
    assert _embedded((tmp_path / "r.html").read_text()) == report
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 1 + len(report.rows)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give a model repository to measure, or --from-json"),
        (("repo", "--from-json", "r.json"), "not both"),
        (("--from-json", "missing.json"), "cannot read the report"),
        (("--from-json", "bad.json"), "not a modelpress compare report (--json) at 'rows'"),
    ],
)
def test_a_bad_saved_report_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    (tmp_path / "bad.json").write_text('{"repository": "r", "threads": 1, "throughput_batch": 1, "machine": {}}')
    result = _cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert message in lines[0]
