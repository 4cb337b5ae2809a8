"""The page's routes in process: redirect, files, live figures, switch-off, and the browser sign-in with auth on."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelpress.serving.app import create_app
from modelpress.serving.ui.session import COOKIE, session_value
from tests.serving.conftest import client_for, running, settings_for

pytestmark = pytest.mark.anyio
TOKEN = "page-token"
PIXELS = [[0.0] * 64]


async def test_root_redirects_to_the_page_which_loads_its_own_files(repo: Path) -> None:
    async with client_for(repo) as client:
        root = await client.get("/", follow_redirects=False)
        page = await client.get("/ui")
        script = await client.get("/ui/static/app.js")
        missing = await client.get("/ui/static/../settings.py")
        other = await client.get("/ui/static/index.html")
    assert root.status_code == 307
    assert root.headers["location"] == "/ui"
    assert page.status_code == 200
    assert '<script src="/ui/static/app.js"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert missing.status_code == 404
    assert other.status_code == 404  # only the listed files are served
    assert "Sign out" not in page.text  # auth is off: no session to end
    assert "{{" not in page.text


async def test_model_metadata_carries_what_the_page_shows(repo: Path) -> None:
    async with client_for(repo) as client:
        meta = (await client.get("/v2/models/digits")).json()["parameters"]
    assert meta["lineage"] == []
    assert meta["size_bytes"] > 0
    assert meta["quality"] == {}
    assert meta["providers"] == ["CPUExecutionProvider"]


async def test_live_figures_count_this_minutes_requests(repo: Path) -> None:
    async with client_for(repo) as client:
        for _ in range(3):
            assert (await client.post("/v1/models/digits:predict", json={"instances": PIXELS})).status_code == 200
        live = (await client.get("/ui/live")).json()
    digits = next(m for m in live["models"] if m["name"] == "digits")
    assert digits["requests"] == 3
    assert digits["requests_per_s"] > 0
    assert digits["p50_ms"] is not None
    assert digits["p99_ms"] >= digits["p50_ms"]
    assert digits["queue_mean_ms"] is not None
    assert live["window_s"] > 0


async def test_the_page_can_be_switched_off(repo: Path) -> None:
    async with client_for(repo, ui=False) as client:
        assert (await client.get("/ui")).status_code == 404
        assert (await client.get("/")).status_code == 404
        assert (await client.get("/ui/live")).status_code == 404


async def test_with_auth_a_browser_signs_in_once_and_its_cookie_counts_only_where_safe(repo: Path) -> None:
    app = create_app(settings_for(repo, auth_token=TOKEN), handle_signals=False)
    async with running(app) as client:
        bare = await client.get("/ui", headers={"Accept": "text/html,*/*"})  # a browser
        assert bare.status_code == 401
        assert 'name="token"' in bare.text
        scripted = await client.get("/ui")
        assert scripted.status_code == 401
        assert scripted.json()["error"].startswith("authentication required")
        assert "models" not in bare.text.lower().split("<form")[0]  # the form shows nothing served
        assert (await client.get("/ui/live")).status_code == 401
        assert (await client.get("/", follow_redirects=False)).status_code == 307
        wrong = await client.post("/ui/login", data={"token": "nope"})
        assert wrong.status_code == 401
        assert "invalid token" in wrong.text
        signed = await client.post("/ui/login", data={"token": TOKEN}, follow_redirects=False)
        assert signed.status_code == 303
        cookie = signed.cookies[COOKIE]
        assert cookie == session_value(TOKEN.encode())
        assert TOKEN not in cookie
        assert "httponly" in signed.headers["set-cookie"].lower()
        assert "samesite=strict" in signed.headers["set-cookie"].lower()
        jar = {"Cookie": f"{COOKIE}={cookie}"}
        signed_in = await client.get("/ui", headers=jar)
        assert signed_in.status_code == 200
        assert 'action="/ui/logout"' in signed_in.text
        assert (await client.get("/ui/live", headers=jar)).status_code == 200
        # The API takes the cookie only with the page's header (a cross-site form cannot add one).
        assert (await client.get("/v2/models/stats", headers=jar)).status_code == 401
        ui = {**jar, "X-Modelpress-UI": "1"}
        assert (await client.get("/v2/models/stats", headers=ui)).status_code == 200
        predicted = await client.post("/v1/models/digits:predict", json={"instances": PIXELS}, headers=ui)
        assert predicted.status_code == 200  # the inference fast path applies the same rule
        forged = {"Cookie": f"{COOKIE}={session_value(b'another-token')}", "X-Modelpress-UI": "1"}
        assert (await client.get("/v2/models/stats", headers=forged)).status_code == 401
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert (await client.get("/ui", headers=bearer)).status_code == 200
