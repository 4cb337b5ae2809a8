"""The request guards (``serving/guards.py``) as HTTP applies them: middleware, fast-path admission, path names.

Over HTTP the token arrives as the ``Authorization`` header, or, for the page at ``/ui``, as its session cookie
(``serving/ui/session.py``), which :class:`HttpGuards` checks before handing the call to the shared guards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from modelpress.serving.errors import ServingError, UnauthenticatedError, serving_error_response
from modelpress.serving.guards import Admission, CallKind, Guards
from modelpress.serving.limits import check_path_names

if TYPE_CHECKING:
    from modelpress.serving.ui.session import BrowserSessions

_KINDS = {"/v2/health/live": CallKind.HEALTH, "/v2/health/ready": CallKind.HEALTH, "/metrics": CallKind.METRICS}


def call_kind(path: str) -> CallKind:
    return _KINDS.get(path, CallKind.API)


def authorization(scope: Scope) -> bytes | None:
    """The request's ``Authorization`` header, if any."""
    return next((v for k, v in scope["headers"] if k == b"authorization"), None)


class HttpGuards:
    """The shared guards for HTTP requests, with the page's session cookie as a second way to show the token.

    Args:
        guards: the server's guards (the same object gRPC admits through).
        sessions: the page's cookie rules when the page is on and auth is on, else None.
    """

    def __init__(self, guards: Guards, sessions: BrowserSessions | None = None) -> None:
        self.guards = guards
        self.sessions = sessions
        self._public = frozenset(sessions.open_paths) if sessions is not None else frozenset()

    def kind(self, path: str) -> CallKind:
        return CallKind.PUBLIC if path in self._public else call_kind(path)

    def admit(self, scope: Scope, kind: CallKind) -> Admission:
        """Admit the request or raise the guards' error (see :meth:`refusal` for the answer to send)."""
        header = authorization(scope)
        session = False
        if header is None and self.sessions is not None and self.guards.auth is not None:
            session = self.sessions.admits(scope, self.guards.auth.tokens.current())
        return self.guards.admit(kind, header, session=session)

    def refusal(self, scope: Scope, error: ServingError) -> Response:
        """The answer to a refused request: the sign-in form for a browser asking for the page, else JSON."""
        if isinstance(error, UnauthenticatedError) and self.sessions is not None:
            page = self.sessions.challenge(scope, str(error))
            if page is not None:
                page.headers.update(error.headers or {})
                return page
        return serving_error_response(error)


class GuardMiddleware:
    """Admits every HTTP request through the guards (outermost but for the fast path, which admits its own)."""

    def __init__(self, app: ASGIApp, guards: HttpGuards) -> None:
        self.app = app
        self.guards = guards

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            admission = self.guards.admit(scope, self.guards.kind(scope["path"]))
        except ServingError as e:
            await self.guards.refusal(scope, e)(scope, receive, send)
            return
        with admission:
            await self.app(scope, receive, send)


async def valid_path_names(request: Request) -> None:
    """Router dependency: ``model_name`` and ``model_version`` of the URL pass :func:`check_path_names` (400)."""
    check_path_names(request.path_params.get("model_name"), request.path_params.get("model_version"))
