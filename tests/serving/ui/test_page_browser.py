"""The /ui page in headless Chromium against a real server: models, live figures, try-it panels, sign-in."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelpress.serving.manifest import Preprocessing, TensorSpec
from tests.browser import chromium, full_page_screenshot, wait_for
from tests.serving.conftest import settings_for, uvicorn_server
from tests.serving.models import CLASSES, FEATURES, LABELS, classifier_graph, publish, publish_encoder

pytestmark = pytest.mark.slow

DIGITS = ("digits", "digits-int8", "digits-pruned")
TEXTS = ("encoder", "encoder-fp16")
TOKEN = "ui-test-token"


def tabular_graph() -> helper.GraphProto:
    w = np.random.default_rng(5).standard_normal((4, 3)).astype(np.float32)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])
    return helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["logits"])], "tabular", [x], [y], [numpy_helper.from_array(w, "W")]
    )


@pytest.fixture(scope="module")
def page_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ui-repo")
    rng = np.random.default_rng(0)
    for seed, (name, precision) in enumerate(zip(DIGITS, ("fp32", "int8", "fp32"), strict=True)):
        publish(
            root, name, 1, classifier_graph(seed)[0], task="classification", labels=LABELS, precision=precision,
            inputs=[TensorSpec(name="input", datatype="FP32", shape=[-1, FEATURES])],
            outputs=[TensorSpec(name="logits", datatype="FP32", shape=[-1, CLASSES])],
            preprocessing=Preprocessing(type="standardize", mean=rng.uniform(0, 5, FEATURES).tolist(),
                                        std=rng.uniform(1, 3, FEATURES).tolist()),
            quality={"accuracy": 0.97 - 0.01 * seed}, lineage=[{"name": "onnx"}, {"name": name.split("-")[-1]}],
        )  # fmt: skip
    for name in TEXTS:
        publish_encoder(root, name)
    publish(
        root, "iris", 1, tabular_graph(), task="classification", labels=["setosa", "versicolor", "virginica"],
        inputs=[TensorSpec(name="x", datatype="FP32", shape=[-1, 4])],
        outputs=[TensorSpec(name="logits", datatype="FP32", shape=[-1, 3])],
        feature_names=["sepal length", "sepal width", "petal length", "petal width"],
    )  # fmt: skip
    return root


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def server(page_repo: Path) -> Iterator[str]:
    with uvicorn_server(settings_for(page_repo)) as url:
        yield url


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the run's screenshots go: MODELPRESS_SCREENSHOTS if set, else a temporary folder."""
    folder = os.environ.get("MODELPRESS_SCREENSHOTS")
    return Path(folder) if folder else tmp_path_factory.mktemp("screenshots")


def _open(browser: Any, url: str) -> None:
    browser.get(url + "/")  # "/" redirects to the page
    wait_for(browser, lambda d: d.execute_script("return document.body.dataset.ready === 'true'"), what="the page")


def _rows(browser: Any, selector: str) -> list[str]:
    return browser.execute_script(
        f"return [...document.querySelectorAll('{selector} tbody tr')].map(r => r.dataset.model)"
    )


def test_the_page_lists_every_served_model_with_live_figures(browser: Any, server: str) -> None:
    httpx.post(f"{server}/v1/models/digits:predict", json={"instances": [[0.0] * FEATURES]}).raise_for_status()
    _open(browser, server)
    assert browser.current_url.endswith("/ui")
    assert sorted(_rows(browser, "#models")) == sorted([*DIGITS, *TEXTS, "iris"])
    lineage = browser.find_element("css selector", '#model-rows tr[data-model="digits-int8"]').text
    assert "onnx → int8" in lineage
    assert "96.00 %" in lineage
    rate = wait_for(
        browser,
        lambda d: d.execute_script("return document.querySelector('#model-rows tr[data-model=\"digits\"] .live-rps')"
                                   ".textContent") not in ("–", ""),
        what="the live figures",
    )  # fmt: skip
    assert rate


def test_drawing_a_digit_asks_every_digits_variant_and_draws_the_attribution_map(
    browser: Any, server: str, shots: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    _open(browser, server)
    pad = browser.find_element("id", "pad")
    chain = ActionChains(browser).move_to_element_with_offset(pad, -40, -90).click_and_hold()
    for dx, dy in ((60, 0), (0, 80), (-60, 0), (60, 0), (0, 80), (-60, 0)):
        chain.move_by_offset(dx // 2, dy // 2).move_by_offset(dx - dx // 2, dy - dy // 2)
    chain.release().perform()
    wait_for(browser, lambda d: len(_rows(d, "#digits-results")) == len(DIGITS), what="a prediction per variant")
    assert sorted(_rows(browser, "#digits-results")) == sorted(DIGITS)
    predictions = browser.execute_script(
        "return [...document.querySelectorAll('#digits-results .prediction')].map(c => c.textContent)"
    )
    assert all(p in LABELS for p in predictions)
    heat = wait_for(browser, lambda d: d.find_element("id", "heat").get_attribute("data-state") == "explained",
                    what="the attribution map")  # fmt: skip
    assert heat
    assert browser.find_element("id", "heat").get_attribute("data-cells") == str(FEATURES)
    full_page_screenshot(browser, shots / "ui-digits.png")


def test_the_pad_works_from_the_keyboard(browser: Any, server: str) -> None:
    from selenium.webdriver.common.keys import Keys

    _open(browser, server)
    pad = browser.find_element("id", "pad")
    pad.click()  # focus (and ink the cell under the pointer)
    pad.send_keys(Keys.ARROW_LEFT, Keys.SPACE, Keys.ARROW_DOWN, Keys.SPACE, Keys.ARROW_DOWN, Keys.SPACE)
    wait_for(browser, lambda d: len(_rows(d, "#digits-results")) == len(DIGITS), what="predictions after keys")
    inked = browser.execute_script("return document.getElementById('pad').getAttribute('aria-label')")
    assert "cells inked" in inked


def test_the_text_panel_gives_a_similarity_per_variant_and_the_words_that_moved_it(
    browser: Any, server: str, shots: Path
) -> None:
    _open(browser, server)
    a, b = browser.find_element("id", "text-a"), browser.find_element("id", "text-b")
    a.clear()
    a.send_keys("hello world the cat")
    b.clear()
    b.send_keys("the cat")
    browser.find_element("id", "compare").click()
    wait_for(browser, lambda d: len(_rows(d, "#text-results")) == len(TEXTS), what="a similarity per text variant")
    values = browser.execute_script(
        "return [...document.querySelectorAll('#text-results .similarity')].map(c => parseFloat(c.textContent))"
    )
    assert all(-1.0 <= v <= 1.0 for v in values)
    assert len(set(values)) == 1  # the two encoders are the same model: the same similarity
    wait_for(browser, lambda d: d.find_element("id", "token-bars").get_attribute("data-state") == "explained",
             what="the token attributions")  # fmt: skip
    assert "hello" in browser.find_element("id", "token-bars").text
    full_page_screenshot(browser, shots / "ui-text.png")


def test_bad_input_shows_the_servers_message(browser: Any, server: str) -> None:
    _open(browser, server)
    field = browser.find_element("id", "tab-input")
    field.clear()
    field.send_keys("[1, 2]")
    browser.find_element("id", "tab-explain").click()
    error = wait_for(browser, lambda d: d.find_element("id", "tab-error").is_displayed(), what="the error message")
    assert error
    assert "expected shape [-1, 4]" in browser.find_element("id", "tab-error").text
    field.clear()
    field.send_keys("[5.1, 3.5, 1.4, 0.2]")
    browser.find_element("id", "tab-explain").click()
    wait_for(browser, lambda d: d.find_element("id", "tab-result").get_attribute("data-state") == "explained",
             what="the tabular explanation")  # fmt: skip
    assert "petal length" in browser.find_element("id", "tab-result").text  # features by the manifest's names
    assert not browser.find_element("id", "tab-error").is_displayed()


def test_at_phone_width_nothing_spills_sideways(browser: Any, server: str) -> None:
    browser.set_window_size(390, 844)
    try:
        _open(browser, server)
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
    finally:
        browser.set_window_size(1280, 900)


def test_with_auth_the_page_needs_the_token_and_a_sign_in_gives_a_session(browser: Any, page_repo: Path) -> None:
    with uvicorn_server(settings_for(page_repo, auth_token=TOKEN)) as url:
        bare = httpx.get(f"{url}/ui", headers={"Accept": "text/html"})
        assert bare.status_code == 401
        assert 'name="token"' in bare.text  # the sign-in form, not the page
        assert httpx.get(f"{url}/v2/models/stats").status_code == 401
        browser.delete_all_cookies()
        browser.get(f"{url}/ui")
        field = browser.find_element("id", "token")
        field.send_keys("wrong")
        field.submit()
        wait_for(browser, lambda d: "invalid token" in d.find_element("id", "login-message").text, what="refusal")
        field = browser.find_element("id", "token")
        field.send_keys(TOKEN)
        field.submit()
        wait_for(browser, lambda d: d.execute_script("return document.body.dataset.ready === 'true'"), what="page")
        assert sorted(_rows(browser, "#models")) == sorted([*DIGITS, *TEXTS, "iris"])
        browser.delete_all_cookies()
