"""The HTML report opened from disk in headless Chromium: rows, plots, Pareto front, sorting, filters, hover."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelpress.export.compare.html import to_html
from modelpress.export.compare.schema import Report
from tests.browser import chromium, full_page_screenshot, wait_for
from tests.export.compare.reports import COMPARABLE, MACHINE, sample_report

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


def _open(browser: Any, tmp_path: Path, report: Report) -> None:
    path = tmp_path / "report.html"
    path.write_text(to_html(report))
    browser.get(path.as_uri())
    wait_for(browser, lambda d: d.execute_script("return document.body.dataset.ready === 'true'"), what="the report")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def _models(browser: Any) -> list[str]:
    return browser.execute_script("return [...document.querySelectorAll('#rows tr')].map(r => r.dataset.model)")


def test_every_variant_gets_a_row_and_every_comparable_one_a_point(browser: Any, tmp_path: Path) -> None:
    report = sample_report()
    _open(browser, tmp_path, report)
    assert _models(browser) == [row.model for row in report.rows]
    assert len(browser.find_elements("css selector", "#plots figure")) == 2  # one plot per family
    assert len(browser.find_elements("css selector", "#plots .point")) == COMPARABLE
    assert len(browser.find_elements("css selector", "#plots [data-role=pareto-front]")) == 2
    assert "Test CPU @ 2.0GHz" in browser.find_element("id", "machine").text
    assert "sha256 does not match" in browser.find_element("id", "notes").text
    assert not browser.find_element("id", "empty").is_displayed()
    folder = os.environ.get("MODELPRESS_SCREENSHOTS")
    full_page_screenshot(browser, Path(folder or tmp_path) / "compare-report.png")


def test_sorting_and_filtering(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.support.ui import Select

    _open(browser, tmp_path, sample_report())
    header = browser.find_element("css selector", "th[data-key=latency_p50_ms] button")
    header.click()
    ascending = _models(browser)
    assert ascending[:3] == ["digits-student", "digits", "digits-fp16"]
    assert ascending[-1].startswith("digits-</script>")  # unmeasured last
    assert browser.find_element("css selector", "th[data-key=latency_p50_ms]").get_attribute("aria-sort") == "ascending"
    header.click()
    assert _models(browser)[:2] == ["minilm", "minilm-int8"]
    Select(browser.find_element("id", "family")).select_by_value("minilm")
    assert sorted(_models(browser)) == ["minilm", "minilm-int8"]
    assert len(browser.find_elements("css selector", "#plots figure")) == 1
    Select(browser.find_element("id", "family")).select_by_value("")
    Select(browser.find_element("id", "precision")).select_by_value("int8")
    assert sorted(_models(browser)) == ["digits-int8", "minilm-int8"]
    assert browser.find_element("id", "count").text == "2 of 7 variants shown"


def test_hover_and_keyboard_focus_show_lineage_latency_and_speedup(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    _open(browser, tmp_path, sample_report())
    point = browser.find_element("css selector", '#plots .point[data-model="digits-int8"] .mark')
    ActionChains(browser).move_to_element(point).perform()
    wait_for(browser, lambda d: d.find_element("id", "tooltip").is_displayed(), what="the tooltip")
    text = browser.find_element("id", "tooltip").text
    assert "onnx → optimize → int8" in text
    assert "0.060 / 0.120 ms" in text
    assert "3.3×" in text  # speedup vs PyTorch eager
    browser.execute_script(
        "arguments[0].focus()", browser.find_element("css selector", '#plots .point[data-model="minilm"]')
    )
    assert "hf-onnx" in browser.find_element("id", "tooltip").text


@pytest.mark.parametrize("failed_only", [False, True])
def test_a_repository_with_no_comparable_models_says_so(browser: Any, tmp_path: Path, failed_only: bool) -> None:
    rows = [r for r in sample_report().rows if r.status == "failed"] if failed_only else []
    _open(browser, tmp_path, Report(repository="empty/repo", threads=1, throughput_batch=8, machine=MACHINE, rows=rows))
    message = browser.find_element("id", "empty")
    assert message.is_displayed()
    assert message.text.startswith("No comparable models")
    assert len(_models(browser)) == len(rows)


def test_at_phone_width_the_report_fits_and_the_table_scrolls_inside(browser: Any, tmp_path: Path) -> None:
    browser.set_window_size(390, 844)
    try:
        _open(browser, tmp_path, sample_report())
        assert browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth") <= 0
        wrap = browser.find_element("css selector", ".table-wrap")
        assert browser.execute_script("return arguments[0].scrollWidth > arguments[0].clientWidth", wrap)
    finally:
        browser.set_window_size(1280, 900)
