"""How a browser proves it holds the bearer token: a form posts the token once, the server sets a cookie.

A browser cannot add ``Authorization: Bearer`` to a page it navigates to, so with auth on:

- ``GET /ui`` without a session answers 401: to a browser (``Accept: text/html``) a small form with no data and
  no model names in it, to anything else the API's JSON error;
- ``POST /ui/login`` with the right token sets ``modelpress_session``: an HMAC of the token (not the token
  itself), ``HttpOnly`` (scripts cannot read it), ``SameSite=Strict`` (other sites' requests do not carry it),
  ``Secure`` over HTTPS. Rotating the token ends every session;
- the page's own files (``/ui...``) are served on the cookie alone; the API accepts the cookie only together
  with the ``X-Modelpress-UI`` header the page's scripts send. A cross-site form cannot set a custom header and
  this server answers no CORS preflight, so the cookie cannot be used to forge an API call (CSRF).

Clients other than the page keep using the bearer header; nothing changes for them.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import cookie_parser
from starlette.responses import Response
from starlette.types import Scope

from modelpress.serving.ui.pages import login_page

COOKIE = "modelpress_session"
HEADER = b"x-modelpress-ui"
UI_PREFIX = "/ui"


def session_value(token: bytes) -> str:
    """The cookie's value for a token: an HMAC, so the cookie never carries the token itself."""
    return hmac.new(token, b"modelpress ui session v1", hashlib.sha256).hexdigest()


def is_ui_path(path: str) -> bool:
    return path == UI_PREFIX or path.startswith(UI_PREFIX + "/")


def _header(scope: Scope, name: bytes) -> bytes | None:
    return next((v for k, v in scope["headers"] if k == name), None)


class BrowserSessions:
    """The cookie rules above, applied by :class:`~modelpress.serving.rest.guard.HttpGuards`."""

    # "/" only redirects to the page; the login form and its stylesheet must be reachable without a session.
    open_paths = ("/", "/ui/login", "/ui/static/style.css")

    def admits(self, scope: Scope, token: bytes) -> bool:
        """True when the request carries a valid session cookie where a cookie is enough."""
        raw = _header(scope, b"cookie")
        if raw is None:
            return False
        if not is_ui_path(scope["path"]) and _header(scope, HEADER) is None:
            return False
        given = cookie_parser(raw.decode("latin-1")).get(COOKIE)
        return given is not None and hmac.compare_digest(given.encode(), session_value(token).encode())

    def challenge(self, scope: Scope, message: str) -> Response | None:
        """The login form (401) for a browser asking for a page without a session; None otherwise (JSON 401)."""
        accept = _header(scope, b"accept") or b""
        if scope.get("method") in ("GET", "HEAD") and is_ui_path(scope["path"]) and b"text/html" in accept:
            return login_page(message, status=401)
        return None
