"""The page at ``/ui`` (``/`` redirects to it), its files, its live figures, and the browser login.

The page itself calls only the public API (V2 metadata and statistics, V1 ``:predict`` and ``:explain``) plus
``GET /ui/live`` (figures computed from the metrics registry, :mod:`modelpress.serving.ui.live`).
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from modelpress.serving.errors import BadRequestError, ModelNotFoundError
from modelpress.serving.rest.body import read_body
from modelpress.serving.rest.common import json_response
from modelpress.serving.ui.pages import asset, index_page, login_page
from modelpress.serving.ui.session import COOKIE, session_value

router = APIRouter(tags=["ui"])
_LOGIN_BODY_BYTES = 4096  # a token form, nothing more


@router.get("/", include_in_schema=False)
async def root() -> Response:
    return RedirectResponse("/ui", status_code=307)


@router.get("/ui", include_in_schema=False)
async def index(request: Request) -> Response:
    return index_page(auth=request.app.state.ui_tokens is not None)


@router.get("/ui/static/{name}", include_in_schema=False)
async def static(name: str) -> Response:
    found = asset(name)
    if found is None:
        raise ModelNotFoundError(f"no file '{name}' in the page's static files")
    return found


@router.get("/ui/live")
async def live(request: Request) -> Response:
    """Per served model over the last minute: requests/s, p50/p99 latency (ms) and queue time (ms).

    From this process's own histograms (the ones ``/metrics`` exposes), interpolated inside their buckets as
    Prometheus' ``histogram_quantile`` does; ``window_s`` is the span actually covered (shorter just after start).
    """
    return json_response(request.app.state.live.figures())


@router.post("/ui/login", include_in_schema=False)
async def login(request: Request) -> Response:
    """The token form's target: the right token sets the session cookie and goes to the page."""
    tokens = request.app.state.ui_tokens
    if tokens is None:  # auth is off: there is nothing to sign in to
        return RedirectResponse("/ui", status_code=303)
    body = await read_body(request, _LOGIN_BODY_BYTES)
    try:
        given = parse_qs(body.decode("utf-8"), strict_parsing=False).get("token", [""])[0].strip().encode()
    except UnicodeDecodeError as e:
        raise BadRequestError("login form: not UTF-8") from e
    token = tokens.current()
    if not given or not hmac.compare_digest(given, token):
        return login_page("invalid token: try again", status=401)
    response = RedirectResponse("/ui", status_code=303)
    response.set_cookie(
        COOKIE, session_value(token), httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/"
    )
    return response


@router.post("/ui/logout", include_in_schema=False)
async def logout() -> Response:
    response = RedirectResponse("/ui", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
