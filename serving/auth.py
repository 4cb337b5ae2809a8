"""Optional bearer-token auth in front of every route (pure ASGI, so it costs one header lookup per request).

The token comes from ``MODELPRESS_AUTH_TOKEN`` or from a file (``MODELPRESS_AUTH_TOKEN_FILE``, e.g. a mounted
Kubernetes Secret). A file is re-read when its modification time changes, so a rotated Secret takes effect
without a restart. Health and ``/metrics`` stay open unless ``auth_health`` / ``auth_metrics`` say otherwise
(kubelet probes and Prometheus scrapes usually carry no token). Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import logging
import os
from pathlib import Path
from typing import Protocol

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from modelpress.serving.errors import error_response
from modelpress.serving.settings import Settings

log = logging.getLogger("serving")

HEALTH_PATHS = ("/v2/health/live", "/v2/health/ready")
METRICS_PATHS = ("/metrics",)
REALM = "modelpress"


class AuthConfigError(Exception):
    """The token cannot be read (missing or empty file, empty variable); the message names the source."""


class TokenSource:
    """The expected token, from the settings' variable or file (file re-read when it changes)."""

    def __init__(self, token: str | None, path: Path | None) -> None:
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._token = _checked(token.encode(), "MODELPRESS_AUTH_TOKEN") if token is not None else b""
        if path is not None:
            self._reload()

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenSource | None:
        """None when auth is off (no token and no token file).

        Raises:
            AuthConfigError: the token file is missing, unreadable or empty.
        """
        token = settings.auth_token.get_secret_value() if settings.auth_token is not None else None
        if token is None and settings.auth_token_file is None:
            return None
        return cls(token, settings.auth_token_file)

    def current(self) -> bytes:
        """The token to compare with; a file that changed is read again (a failed re-read keeps the old one)."""
        if self._path is not None:
            try:
                stat = os.stat(self._path)
                if (stat.st_mtime_ns, stat.st_size) != self._stamp:
                    self._reload()
            except (OSError, AuthConfigError) as e:
                log.warning("auth token file %s: %s; keeping the previous token", self._path, e)
        return self._token

    def _reload(self) -> None:
        try:
            stat = os.stat(self._path)
            raw = Path(self._path).read_bytes()
        except OSError as e:
            raise AuthConfigError(f"auth token file {self._path} cannot be read: {e.strerror}") from e
        self._token = _checked(raw.strip(), f"auth token file {self._path}")
        self._stamp = (stat.st_mtime_ns, stat.st_size)


def _checked(token: bytes, source: str) -> bytes:
    if not token.strip():
        raise AuthConfigError(f"{source} is empty: set a token, or unset it to turn auth off")
    return token


def bearer_token(header: bytes | None) -> bytes | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None (scheme is case-insensitive)."""
    if not header:
        return None
    scheme, _, value = header.partition(b" ")
    if scheme.lower() != b"bearer" or not value.strip():
        return None
    return value.strip()


class CookieSessions(Protocol):
    """A browser's way to show it holds the token (``serving/ui/session.py``): a session cookie."""

    open_paths: tuple[str, ...]

    def admits(self, scope: Scope, token: bytes) -> bool: ...

    def challenge(self, scope: Scope, message: str) -> Response | None: ...


class BearerAuth:
    """The check itself, shared by the middleware and the inference fast path (``serving/rest/fast.py``).

    ``sessions``, when given, also admits a browser's session cookie where it allows one (the page at ``/ui``).
    """

    def __init__(
        self, tokens: TokenSource, *, health: bool, metrics: bool, sessions: CookieSessions | None = None
    ) -> None:
        self.tokens = tokens
        self.open_paths = (() if health else HEALTH_PATHS) + (() if metrics else METRICS_PATHS)
        self.sessions = sessions
        if sessions is not None:
            self.open_paths += sessions.open_paths

    def denied(self, scope: Scope) -> Response | None:
        """None when the request may pass (an open path, or the right token), else the 401 to answer."""
        if scope["path"] in self.open_paths:
            return None
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        given = bearer_token(header)
        # compare_digest takes time independent of where the first differing byte is (no timing oracle).
        if given is not None and hmac.compare_digest(given, self.tokens.current()):
            return None
        if given is None and self.sessions is not None and self.sessions.admits(scope, self.tokens.current()):
            return None
        if given is None:
            message = "authentication required: send 'Authorization: Bearer <token>'"
            challenge = f'Bearer realm="{REALM}"'
        else:
            message = "invalid bearer token"
            challenge = f'Bearer realm="{REALM}", error="invalid_token"'
        if self.sessions is not None and (page := self.sessions.challenge(scope, message)) is not None:
            page.headers["WWW-Authenticate"] = challenge
            return page
        return error_response(401, message, {"WWW-Authenticate": challenge})


class BearerAuthMiddleware:
    """Answers 401 (JSON, ``WWW-Authenticate: Bearer``) to a request without the right token."""

    def __init__(self, app: ASGIApp, auth: BearerAuth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        denied = self.auth.denied(scope) if scope["type"] == "http" else None
        if denied is None:
            await self.app(scope, receive, send)
        else:
            await denied(scope, receive, send)
