"""The request guards, defined once: what they admit and count, and that every transport goes through them."""

from __future__ import annotations

import pytest

from modelpress.serving.app import create_app
from modelpress.serving.auth import BearerAuth, TokenSource
from modelpress.serving.drain import Drain
from modelpress.serving.errors import ServingError, UnauthenticatedError
from modelpress.serving.guards import CallKind, Guards
from tests.serving.conftest import running, settings_for
from tests.serving.models import FEATURES

TOKEN = b"guard-token"
BODY = {"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": [0.5] * FEATURES}]}


def _guards(*, auth: bool, health: bool = False, metrics: bool = False) -> Guards:
    bearer = BearerAuth(TokenSource(TOKEN.decode(), None)) if auth else None
    return Guards(Drain(1, 0, on_start=lambda: None), bearer, auth_health=health, auth_metrics=metrics)


def test_api_calls_are_counted_in_flight_and_health_and_metrics_are_not():
    guards = _guards(auth=False)
    with guards.admit(CallKind.API, None):
        assert guards.drain.inflight == 1
        with guards.admit(CallKind.HEALTH, None), guards.admit(CallKind.METRICS, None):
            assert guards.drain.inflight == 1
    assert guards.drain.inflight == 0
    with pytest.raises(RuntimeError), guards.admit(CallKind.API, None):
        raise RuntimeError("a failing handler")
    assert guards.drain.inflight == 0


@pytest.mark.parametrize(
    ("health", "metrics", "open_kinds"),
    [
        (False, False, {CallKind.HEALTH, CallKind.METRICS, CallKind.PUBLIC}),
        (True, False, {CallKind.METRICS, CallKind.PUBLIC}),
        (False, True, {CallKind.HEALTH, CallKind.PUBLIC}),
        (True, True, {CallKind.PUBLIC}),
    ],
)
def test_the_token_guards_api_calls_and_health_or_metrics_when_asked(health, metrics, open_kinds):
    guards = _guards(auth=True, health=health, metrics=metrics)
    for kind in CallKind:
        with guards.admit(kind, b"Bearer " + TOKEN):
            pass
        if kind in open_kinds:
            with guards.admit(kind, None):
                pass
            continue
        with pytest.raises(UnauthenticatedError, match="authentication required") as missing:
            guards.admit(kind, None)
        assert missing.value.status == 401
        assert missing.value.headers == {"WWW-Authenticate": 'Bearer realm="modelpress"'}
        with pytest.raises(UnauthenticatedError, match="invalid bearer token"):
            guards.admit(kind, b"Bearer wrong")
    assert guards.drain.inflight == 0


def test_a_session_the_transport_checked_stands_for_the_token():
    """The page's cookie is checked over HTTP (HttpGuards); the guards then admit without a header, and count it."""
    guards = _guards(auth=True, health=False, metrics=False)
    with guards.admit(CallKind.API, None, session=True):
        assert guards.drain.inflight == 1
    assert guards.drain.inflight == 0
    with pytest.raises(UnauthenticatedError):
        guards.admit(CallKind.API, None, session=False)


class _NoEntryError(ServingError):
    status = 429


@pytest.mark.anyio
@pytest.mark.parametrize("fast_path", [True, False])
async def test_every_rest_request_passes_the_one_guard(repo, fast_path):
    """A new guard added to ``Guards.admit`` reaches the fast path and FastAPI's stack alike."""
    app = create_app(settings_for(repo, fast_path=fast_path), handle_signals=False)
    kinds = []

    def refuse(kind: CallKind, authorization: bytes | None, *, session: bool = False):
        kinds.append(kind)
        raise _NoEntryError("the new guard says no")

    app.state.guards.admit = refuse
    async with running(app) as c:
        for method, path, body in [
            ("POST", "/v2/models/digits/infer", BODY),
            ("POST", "/v1/models/digits:predict", {"instances": [[0.0] * FEATURES]}),
            ("GET", "/v2/models/digits", None),
            ("GET", "/v2/health/ready", None),
            ("GET", "/metrics", None),
        ]:
            r = await c.request(method, path, json=body)
            assert (r.status_code, r.json()) == (429, {"error": "the new guard says no"}), path
    assert kinds == [CallKind.API, CallKind.API, CallKind.API, CallKind.HEALTH, CallKind.METRICS]
