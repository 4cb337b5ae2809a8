"""Optional bearer-token auth: the token's source and the check (applied to every transport by ``guards.py``).

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

from modelpress.serving.errors import UnauthenticatedError
from modelpress.serving.settings import Settings

log = logging.getLogger("serving")

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


class BearerAuth:
    """The token check itself; :class:`~modelpress.serving.guards.Guards` applies it to every transport."""

    def __init__(self, tokens: TokenSource) -> None:
        self.tokens = tokens

    def check(self, authorization: bytes | None) -> None:
        """Pass when ``authorization`` is ``Bearer <the token>``.

        Args:
            authorization: the ``Authorization`` header (REST) or ``authorization`` metadata (gRPC), if sent.

        Raises:
            UnauthenticatedError: no token, or the wrong one (``WWW-Authenticate`` in its headers).
        """
        given = bearer_token(authorization)
        # compare_digest takes time independent of where the first differing byte is (no timing oracle).
        if given is not None and hmac.compare_digest(given, self.tokens.current()):
            return
        if given is None:
            message = "authentication required: send 'Authorization: Bearer <token>'"
            challenge = f'Bearer realm="{REALM}"'
        else:
            message = "invalid bearer token"
            challenge = f'Bearer realm="{REALM}", error="invalid_token"'
        raise UnauthenticatedError(message, headers={"WWW-Authenticate": challenge})
