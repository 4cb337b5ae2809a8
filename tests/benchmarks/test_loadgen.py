import json
import shutil
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import numpy as np
import pytest

from modelpress.benchmarks.loadgen import (
    WRK_MARKER,
    Payload,
    WrkError,
    lua_script,
    lua_string,
    parse_wrk_output,
    run_wrk,
)
from modelpress.benchmarks.payloads import plain_json, v2_binary, v2_json
from modelpress.benchmarks.processes import free_port, python_module, rss_bytes, running_server


class _QuietServer(ThreadingHTTPServer):
    """wrk drops its connections when its time is up: a reset there is the end of the run, not a failure to print."""

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (make tools installs it as root)")


def _summary_line(requests=100, status=0, read=0, duration_us=2_000_000, p50=1500, p99=4000) -> str:
    data = {"requests": requests, "duration_us": duration_us, "bytes": 999,
            "errors": {"connect": 0, "read": read, "write": 0, "status": status, "timeout": 0},
            "latency_us": {"min": 900, "max": 5000, "mean": 1600.5, "p50": p50, "p90": 3000, "p95": 3500,
                           "p99": p99}}  # fmt: skip
    return WRK_MARKER + json.dumps(data)


def test_parse_counts_only_good_answers_in_throughput():
    out = "Running 2s test @ http://x\n  1 threads and 4 connections\n" + _summary_line(status=20, read=3) + "\n"
    result = parse_wrk_output(out, concurrency=4, kind="binary")
    assert result.requests == 100
    assert result.errors == 23
    assert result.error_counts == {"status": 20, "read": 3}
    assert result.throughput_rps == pytest.approx(80 / 2.0)
    assert (result.p50_ms, result.p99_ms, result.max_ms) == (1.5, 4.0, 5.0)
    assert result.payload == "binary"
    assert result.concurrency == 4


def test_parse_without_answers_has_no_percentiles():
    result = parse_wrk_output(_summary_line(requests=0), concurrency=1, kind="json")
    assert result.throughput_rps == 0
    assert result.p50_ms is None
    assert result.p99_ms is None


def test_parse_without_summary_line_names_the_problem():
    with pytest.raises(WrkError, match="no summary line"):
        parse_wrk_output("unable to connect to 127.0.0.1:1 Connection refused\n", concurrency=1, kind="json")


def test_lua_string_escapes_every_unsafe_byte():
    assert lua_string(b'ab "q" \\ 1') == '"ab \\034q\\034 \\092 1"'
    # three digits always, so a following digit is not read as part of the escape
    assert lua_string(b"\x001") == '"\\0001"'
    text = lua_string(bytes(range(256)))
    assert text.isascii()
    assert "\n" not in text


def test_lua_script_sets_method_path_headers_and_a_json_done_hook():
    payload = Payload("/v2/models/m/infer", b'{"a": 1}', {"Content-Type": "application/json"}, "json")
    script = lua_script(payload)
    assert 'wrk.method = "POST"' in script
    assert 'wrk.path = "/v2/models/m/infer"' in script
    assert 'wrk.headers["Content-Type"] = "application/json"' in script
    assert 'wrk.body = "{\\034a\\034: 1}"' in script
    assert "function done(summary, latency, requests)" in script
    assert all(f"latency:percentile({p})" in script for p in (50, 90, 95, 99))


class _ExactBodyHandler(BaseHTTPRequestHandler):
    """200 when the body is exactly the expected bytes, 400 otherwise: proves the script sends them intact."""

    protocol_version = "HTTP/1.1"  # keep-alive, as wrk expects
    expected = b""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ok = body == self.expected and self.headers["X-Check"] == "yes"
        self.send_response(200 if ok else 400)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def exact_body_server():
    server = _QuietServer(("127.0.0.1", 0), _ExactBodyHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@needs_wrk
def test_wrk_sends_binary_bodies_byte_for_byte(exact_body_server):
    array = np.arange(-8, 8, dtype=np.float32).reshape(2, 8) / 3
    payload = v2_binary("m", "input", array, output="logits")
    body = payload.body + bytes(range(256))  # every byte value, quotes and backslashes among them
    _ExactBodyHandler.expected = body
    request = Payload("/check", body, {**payload.headers, "X-Check": "yes"}, "binary")
    result = run_wrk(exact_body_server, request, concurrency=2, seconds=1)
    assert result.requests > 0
    assert result.errors == 0, result.error_counts
    assert result.throughput_rps > 0


@needs_wrk
def test_wrong_answers_are_counted_as_errors(exact_body_server):
    _ExactBodyHandler.expected = b"something else"
    result = run_wrk(exact_body_server, Payload("/check", b"x", {"X-Check": "yes"}, "json"), concurrency=1, seconds=1)
    assert result.requests > 0
    assert result.error_counts.get("status") == result.requests
    assert result.throughput_rps == 0


@needs_wrk
def test_bounded_step_against_the_echo_server():
    port = free_port()
    with running_server(
        python_module("modelpress.benchmarks.baselines.echo_server", "--port", str(port)), port
    ) as proc:
        assert rss_bytes(proc.pid) > 10 * 2**20
        payload = v2_json("m", "input", np.ones((1, 4), np.float32))
        result = run_wrk(f"http://127.0.0.1:{port}", payload, concurrency=4, seconds=1)
    assert result.errors == 0
    assert 0.9 < result.seconds < 3
    assert result.requests > 10
    assert 0 < result.p50_ms <= result.p90_ms <= result.p95_ms <= result.p99_ms <= result.max_ms


@needs_wrk
def test_refused_connection_is_a_clear_error():
    payload = v2_json("m", "input", np.ones((1, 4), np.float32))
    with pytest.raises(WrkError, match=r"Connection refused|unable to connect"):
        run_wrk(f"http://127.0.0.1:{free_port()}", payload, concurrency=1, seconds=1)


def test_whole_seconds_only():
    with pytest.raises(ValueError, match="whole number"):
        run_wrk("http://127.0.0.1:1", Payload("/", b"", {}, "json"), concurrency=1, seconds=0)


def test_binary_payload_layout():
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    payload = v2_binary("m", "input", array, output="logits")
    length = int(payload.headers["Inference-Header-Content-Length"])
    header = json.loads(payload.body[:length])
    assert header["inputs"][0]["parameters"]["binary_data_size"] == 24
    assert header["outputs"] == [{"name": "logits", "parameters": {"binary_data": True}}]
    assert np.array_equal(np.frombuffer(payload.body[length:], "<f4").reshape(2, 3), array)


def test_bytes_payloads_json_and_length_prefixed_binary():
    texts = np.array(["héllo", "a"])
    as_json = json.loads(v2_json("m", "text", texts).body)
    assert as_json["inputs"][0] == {"name": "text", "shape": [2], "datatype": "BYTES", "data": ["héllo", "a"]}
    payload = v2_binary("m", "text", texts)
    length = int(payload.headers["Inference-Header-Content-Length"])
    raw = payload.body[length:]
    assert raw == b"\x06\x00\x00\x00h\xc3\xa9llo\x01\x00\x00\x00a"
    assert json.loads(payload.body[:length])["inputs"][0]["parameters"]["binary_data_size"] == len(raw)


def test_unknown_dtype_is_refused_by_name():
    with pytest.raises(ValueError, match="uint16"):
        v2_json("m", "x", np.zeros(2, np.uint16))


def test_plain_json_payload():
    payload = plain_json("/predict", np.zeros((2, 2), np.float32))
    assert json.loads(payload.body) == {"instances": [[0.0, 0.0], [0.0, 0.0]]}


class _RecordingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        _RecordingHandler.seen.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@needs_wrk
def test_rotating_bodies_are_sent_in_turn():
    from modelpress.benchmarks.loadgen import rotating_lua

    server = _QuietServer(("127.0.0.1", 0), _RecordingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _RecordingHandler.seen = []
    try:
        payloads = [Payload("/p", body, {"Content-Type": "application/json"}, "json") for body in (b"a", b"bb", b'"c"')]
        result = run_wrk(f"http://127.0.0.1:{server.server_address[1]}", payloads[0], concurrency=1, seconds=1,
                         extra_lua=rotating_lua(payloads))  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert result.errors == 0
    seen = _RecordingHandler.seen
    assert len(seen) >= 6
    cycle = [b"a", b"bb", b'"c"']
    start = cycle.index(seen[0])  # wrk may take one body for its own set-up before the first request
    assert seen[:6] == [cycle[(start + i) % 3] for i in range(6)]
