"""The page's static files (package data in ``static/``), read once, and the login form."""

from __future__ import annotations

import html
from functools import cache
from importlib.resources import files

from starlette.responses import HTMLResponse, Response

# Files the page may load, with their media types; nothing else under static/ is served.
STATIC = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}

# Only this server's own files and API: no inline script, no other origin, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@cache
def static_text(name: str) -> str:
    return (files("modelpress.serving.ui") / "static" / name).read_text(encoding="utf-8")


_SIGN_OUT = '<form method="post" action="/ui/logout"><button type="submit" class="quiet">Sign out</button></form>'


def index_page(*, auth: bool) -> HTMLResponse:
    """The page; its "Sign out" button only where there is a session to end (auth on)."""
    text = static_text("index.html").replace("{{sign_out}}", _SIGN_OUT if auth else "")
    return HTMLResponse(text, headers=SECURITY_HEADERS)


def asset(name: str) -> Response | None:
    """One of :data:`STATIC`, else None."""
    media = STATIC.get(name)
    if media is None:
        return None
    return Response(static_text(name), media_type=media, headers=SECURITY_HEADERS)


def login_page(message: str, status: int = 401) -> HTMLResponse:
    """The token form; ``message`` says why it is shown (no token, or a wrong one)."""
    text = static_text("login.html").replace("{{message}}", html.escape(message))
    return HTMLResponse(text, status_code=status, headers=SECURITY_HEADERS)
