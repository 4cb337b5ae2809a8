"""SIGTERM while clients keep sending: readiness turns false first, every in-flight request completes, then exit."""

from __future__ import annotations

import signal
import sys
import threading
import time

import httpx
import pytest

from tests.serving.server_process import server_process
from tests.serving.test_server import BODY

CLIENTS = 6
REFUSED = "server is shutting down"  # the drain's answer to work that arrives after SIGTERM


@pytest.mark.slow
def test_sigterm_under_load_drains_in_order(repo):
    # (sent, answered, outcome): the status code, "refused" for the drain's own 503, or the exception name
    results: list[tuple[float, float, object]] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=30) as session:
            for _ in range(300):  # bounded
                if stop.is_set():
                    return
                sent = time.monotonic()
                try:
                    answer = session.post(f"{url}/v2/models/digits/infer", json=BODY)
                    outcome: object = answer.status_code
                    if outcome == 503 and answer.json().get("error") == REFUSED:
                        outcome = "refused"
                except httpx.TransportError as e:
                    outcome = type(e).__name__
                results.append((sent, time.monotonic(), outcome))
                if not isinstance(outcome, int):
                    return

    # Each request waits 200 ms for company (also when idle), so several are always in flight.
    with server_process(
        [sys.executable, "-m", "modelpress.serving"],
        repo,
        MODELPRESS_MAX_QUEUE_DELAY_US="200000",
        MODELPRESS_WAIT_WHEN_IDLE="true",
        MODELPRESS_DRAIN_GRACE_S="1",
        MODELPRESS_LOG_LEVEL="warning",
    ) as server:
        proc, url = server.proc, server.url
        workers = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for w in workers:
            w.start()
        time.sleep(1.5)
        term_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        unready_at = None
        for _ in range(300):  # readiness polled until it turns false (bounded: ~6 s)
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 503:
                    unready_at = time.monotonic()
                    break
            except httpx.TransportError:
                break
            time.sleep(0.02)
        proc.wait(timeout=60)
        exited_at = time.monotonic()
        stop.set()
        for w in workers:
            w.join(timeout=30)
    stderr = server.stderr

    assert proc.returncode in (0, -signal.SIGTERM), stderr
    assert unready_at is not None, "readiness never answered 503 before the exit"
    assert term_at < unready_at < exited_at
    # The client's clock cannot say whether a request sent just before SIGTERM reached the server before the
    # drain began: the server's answer does. Every request it accepted completes (200); the drain refuses the
    # rest with its own 503; a request cut off (transport error, any other status) fails the test.
    before = [r for r in results if r[0] < term_at]
    assert len(before) >= CLIENTS
    assert all(status in (200, "refused") for _, _, status in before), before
    inflight_at_term = [r for r in before if r[2] == 200 and r[1] > term_at]
    assert inflight_at_term, "no request was in flight when SIGTERM came"
    after = [status for sent, _, status in results if sent >= term_at]
    assert set(after) <= {200, "refused", "ConnectError", "RemoteProtocolError", "ReadError"}, after
    assert "refused" in [r[2] for r in results]  # new work was refused while draining, before the exit
    assert "Traceback" not in stderr
