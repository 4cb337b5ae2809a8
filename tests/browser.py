"""Headless Chromium for the tests that look at the HTML report and the /ui page as a person would.

Debian's ``chromium`` and ``chromium-driver`` (``make tools`` installs them) driven by Selenium. Where either is
missing the tests are skipped with the reason. Chromium runs as root here, in a closed network: hence no sandbox,
no background networking, no component updates, and a fresh profile per session.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "images"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars",
)  # fmt: skip


def _binary(*names: str) -> str | None:
    return next((found for name in names if (found := shutil.which(name))), None)


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A Selenium Chrome driver on Debian's chromium, or ``pytest.skip`` saying what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
    browser = _binary("chromium", "chromium-browser", "google-chrome")
    driver_path = _binary("chromedriver")
    if browser is None or driver_path is None:
        pytest.skip("no chromium or chromedriver on PATH: `make tools` (apt-get install chromium chromium-driver)")
    profile = tempfile.mkdtemp(prefix="modelpress-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=driver_path)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver: Any, condition: Callable[[Any], Any], seconds: float = 15.0, what: str = "the page") -> Any:
    """Selenium's WebDriverWait with a message that says what was awaited.

    An element found on the page a form submit is leaving goes stale before its text is read; that is the page
    still changing, so the wait polls again rather than failing (CI once hit it between find and ``.text``).
    """
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    ignored = (NoSuchElementException, StaleElementReferenceException)
    wait = WebDriverWait(driver, seconds, poll_frequency=0.1, ignored_exceptions=ignored)
    return wait.until(condition, f"timed out waiting for {what}")


def full_page_screenshot(driver: Any, path: Path, width: int | None = None) -> Path:
    """A screenshot of the whole page (the window grown to the document's height), for docs/images/."""
    size = driver.get_window_size()
    driver.execute_script("window.scrollTo(0, 0)")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width or size["width"], min(int(height) + 20, 4000))
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    driver.set_window_size(size["width"], size["height"])
    return path
