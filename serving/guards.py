"""The checks every request passes before its handler, defined once for every transport.

REST (FastAPI's middleware and the inference fast path, ``serving/rest/guard.py`` and ``serving/rest/fast.py``)
and gRPC (``serving/grpc/service.py``) each say what kind of call a request is and hand over its
``authorization`` header or metadata; :meth:`Guards.admit` does the rest: the bearer token (when auth is on,
except on health and metrics unless ``auth_health`` / ``auth_metrics``) and the drain's in-flight count
(health and metrics are not counted, so a probe or a scrape never holds a shutdown back). A new guard goes here
and every transport has it. What comes after admission is shared too: the limits (``serving/limits.py``), the
data plane (``serving/dataplane.py``) and the error table (``serving/errors.py``: HTTP status and gRPC code).
"""

from __future__ import annotations

import enum

from modelpress.serving.auth import BearerAuth, TokenSource
from modelpress.serving.drain import Drain
from modelpress.serving.settings import Settings


class CallKind(enum.Enum):
    """What a request is, as far as the guards care."""

    HEALTH = "health"  # liveness and readiness: open unless auth_health, never counted in flight
    METRICS = "metrics"  # the Prometheus scrape: open unless auth_metrics, never counted in flight
    API = "api"  # everything else (inference, metadata, statistics, repository): token, counted in flight
    PUBLIC = "public"  # the page's sign-in form and its stylesheet: never guarded, never counted


class Admission:
    """A request let in: counted in flight for the drain while the ``with`` block runs."""

    __slots__ = ("_drain",)

    def __init__(self, drain: Drain | None) -> None:
        self._drain = drain

    def __enter__(self) -> Admission:
        if self._drain is not None:
            self._drain.inflight += 1
        return self

    def __exit__(self, *_: object) -> None:
        if self._drain is not None:
            self._drain.inflight -= 1


class Guards:
    """The request guards of one server, shared by its REST and gRPC transports.

    Args:
        drain: whose in-flight count the admitted requests keep.
        auth: the bearer-token check when auth is on, else None.
        auth_health: health calls need the token too.
        auth_metrics: the metrics scrape needs the token too.
    """

    def __init__(self, drain: Drain, auth: BearerAuth | None, *, auth_health: bool, auth_metrics: bool) -> None:
        self.drain = drain
        self.auth = auth
        self._guarded = {
            CallKind.API: auth is not None,
            CallKind.HEALTH: auth is not None and auth_health,
            CallKind.METRICS: auth is not None and auth_metrics,
            CallKind.PUBLIC: False,
        }
        self._uncounted = Admission(None)

    @classmethod
    def from_settings(cls, settings: Settings, drain: Drain, tokens: TokenSource | None) -> Guards:
        """The guards the settings ask for (auth on when ``tokens`` is given)."""
        auth = BearerAuth(tokens) if tokens is not None else None
        return cls(drain, auth, auth_health=settings.auth_health, auth_metrics=settings.auth_metrics)

    def admit(self, kind: CallKind, authorization: bytes | None, *, session: bool = False) -> Admission:
        """Let a request in, or refuse it; use the result as ``with guards.admit(...):`` around the handler.

        Args:
            kind: what the call is.
            authorization: the ``Authorization`` header or ``authorization`` metadata, if sent.
            session: the transport has already checked that the caller holds the token by other means (the page's
                session cookie, ``serving/ui/session.py``), so no header is needed.

        Raises:
            UnauthenticatedError: auth is on for this kind of call and the token is missing or wrong.
        """
        if self._guarded[kind] and not session:
            self.auth.check(authorization)  # type: ignore[union-attr]  # guarded only when auth is set
        return Admission(self.drain) if kind is CallKind.API else self._uncounted
