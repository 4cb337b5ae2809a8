"""The gRPC port at the HTTP/2 wire level, checked against RFC 9113 and gRPC's PROTOCOL-HTTP2.md.

A raw client (h2's state machine over a plain socket, every frame both ways recorded) drives the port the way no
gRPC library would: a 16-byte flow-control window, headers split into CONTINUATION frames, a message cut into
10-byte DATA frames, frames of unknown types, a reset mid-call, broken framing, HTTP/1.1. The checks are the specs'
rules rather than what one server happens to do, so they hold for whatever implementation serves --grpc-port.
"""

from __future__ import annotations

import base64
import functools
import gzip
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    DataReceived,
    Event,
    PingAckReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    SettingsAcknowledged,
    StreamEnded,
    StreamReset,
    TrailersReceived,
)
from h2.settings import SettingCodes, Settings
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    ExtensionFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from modelpress.serving.grpc.generated import open_inference_pb2 as pb
from tests.serving.conftest import ADMIN_TOKEN, settings_for
from tests.serving.grpc.conftest import Served, serve
from tests.serving.grpc.test_service import _grpc_outcomes, digits_request
from tests.serving.models import FEATURES, classifier_graph, classifier_reference

pytestmark = pytest.mark.slow  # real servers with gRPC (three in this module): a few seconds

TIMEOUT_S = 10.0  # every wait on the socket ends by then: a server that does not answer fails, never hangs
SERVICE = "/inference.GRPCInferenceService"
INFER = f"{SERVICE}/ModelInfer"
AUTH = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
# Batches wait 300 ms even for a lone request: a call stays pending long enough to reset, time out or stop under.
SLOW = {"max_queue_delay_us": 300_000, "max_batch_size": 64, "wait_when_idle": True}
PERCENT_ENCODED = re.compile(r"(?:[\x20-\x24\x26-\x7e]|%[0-9A-F]{2})*")  # PROTOCOL-HTTP2's Percent-Encoded


# ---- the raw client --------------------------------------------------------------------------------------------
def decode_headers(headers: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    """Header fields as text (latin-1, so a non-ASCII byte a server should have percent-encoded stays visible)."""
    out: dict[str, str] = {}
    for name, value in headers:
        key = name.decode("latin-1")
        out[key] = f"{out[key]},{value.decode('latin-1')}" if key in out else value.decode("latin-1")
    return out


def split_frames(buffer: bytearray) -> Iterator[tuple[Frame, bytes]]:
    """Take each complete frame off the front of ``buffer``: parsed (hyperframe) and as its raw bytes."""
    while len(buffer) >= 9:
        length = int.from_bytes(buffer[:3], "big")
        if len(buffer) < 9 + length:
            return
        raw = bytes(buffer[: 9 + length])
        del buffer[: 9 + length]
        frame, _ = Frame.parse_frame_header(memoryview(raw[:9]))
        frame.parse_body(memoryview(raw[9:]))
        yield frame, raw


def grpc_message(message: bytes, *, compressed: bool = False, declared: int | None = None) -> bytes:
    """A Length-Prefixed-Message: compressed flag, 4-byte big-endian length (``declared`` to lie), the bytes."""
    return bytes([compressed]) + struct.pack(">I", len(message) if declared is None else declared) + message


@dataclass
class Response:
    """What one stream answered: the response headers, the DATA bytes, the trailers or the server's reset."""

    stream_id: int
    headers: dict[str, str] = field(default_factory=dict)
    data: bytearray = field(default_factory=bytearray)
    trailers: dict[str, str] | None = None
    trailers_only: bool = False  # the one HEADERS frame carried END_STREAM
    reset: int | None = None  # the RST_STREAM error code, when the server reset the stream
    ended: bool = False

    @property
    def done(self) -> bool:
        return self.ended or self.reset is not None

    @property
    def grpc(self) -> dict[str, str]:
        """The fields that carry the status: the trailers, or the headers of a Trailers-Only response."""
        if self.trailers_only:
            return self.headers
        assert self.trailers is not None, f"stream {self.stream_id} ended without trailers: {self}"
        return self.trailers

    @property
    def status(self) -> int:
        return int(self.grpc["grpc-status"])

    def messages(self) -> list[bytes]:
        """The Length-Prefixed-Messages in the DATA, each checked to be whole (gzip ones decompressed)."""
        data, out, pos = bytes(self.data), [], 0
        while pos < len(data):  # each turn moves pos on by at least the 5-byte prefix
            assert len(data) - pos >= 5, f"a truncated length prefix: {data[pos:]!r}"
            flag, length = data[pos], int.from_bytes(data[pos + 1 : pos + 5], "big")
            body = data[pos + 5 : pos + 5 + length]
            assert len(body) == length, f"the message says {length} bytes, the stream has {len(body)}"
            assert flag in (0, 1), f"compressed flag {flag}"
            if flag:
                assert self.headers.get("grpc-encoding") == "gzip", self.headers
                body = gzip.decompress(body)
            out.append(body)
            pos += 5 + length
        return out

    def infer(self) -> pb.ModelInferResponse:
        """The one ModelInferResponse of a successful call."""
        assert (self.headers.get(":status"), self.reset) == ("200", None), self
        assert self.status == 0, self.grpc
        (message,) = self.messages()
        return pb.ModelInferResponse.FromString(message)


class Client:
    """One HTTP/2 connection: h2's client state machine on a plain socket, every frame both ways kept in ``log``.

    GOAWAY frames are kept from h2 (h2 closes its whole connection on one, though RFC 9113 §6.8 lets the streams up
    to the frame's last-stream-id finish) and land in ``goaways`` instead.
    """

    def __init__(self, sock: socket.socket, conn: H2Connection, authority: str) -> None:
        self.sock = sock
        self.conn = conn
        self.authority = authority
        self.log: list[tuple[str, Frame]] = []  # ("sent" | "received", frame), in wire order
        self.responses: dict[int, Response] = {}
        self.goaways: list[GoAwayFrame] = []
        self.pings: list[bytes] = []
        self.closed = False  # the server closed the socket
        self.remote_settings_seen = False
        self.settings_acked = False
        self._inbound = bytearray()

    # -- sending
    def flush(self) -> None:
        out = self.conn.data_to_send()
        if out:
            self.log.extend(("sent", frame) for frame, _ in split_frames(bytearray(out)))
            self.sock.sendall(out)

    def send_raw(self, data: bytes) -> None:
        """Bytes h2 would not produce (an unknown frame type), after whatever h2 has queued."""
        self.flush()
        self.log.extend(("sent", frame) for frame, _ in split_frames(bytearray(data)))
        self.sock.sendall(data)

    def start(
        self,
        body: bytes | None,
        *,
        path: str = INFER,
        method: str = "POST",
        content_type: str = "application/grpc",
        timeout: str | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        chunk: int | None = None,
        header_frame_size: int | None = None,
    ) -> int:
        """Open a stream with the request's headers and send ``body`` (None: headers only, the stream left open).

        The headers in PROTOCOL-HTTP2's order: the reserved ones, te, grpc-timeout, content-type, then metadata.
        ``header_frame_size`` cuts the header block into HEADERS + CONTINUATION frames of that many bytes.
        """
        sid = self.conn.get_next_available_stream_id()
        headers = [(":method", method), (":scheme", "http"), (":path", path), (":authority", self.authority)]
        headers += [("te", "trailers"), *([("grpc-timeout", timeout)] if timeout else [])]
        headers += [("content-type", content_type), *metadata]
        usual = self.conn.max_outbound_frame_size
        self.conn.max_outbound_frame_size = header_frame_size or usual  # h2 cuts header blocks at this size
        try:
            self.conn.send_headers(sid, headers, end_stream=body == b"")
        finally:
            self.conn.max_outbound_frame_size = self.conn.streams[sid].max_outbound_frame_size = usual
        self.responses[sid] = Response(sid)
        self.flush()
        if body:
            self.send_body(sid, body, chunk=chunk)
        return sid

    def send_body(self, sid: int, body: bytes, *, chunk: int | None = None, end_stream: bool = True) -> None:
        """DATA frames of at most ``chunk`` bytes, as the server's flow-control windows allow."""
        sent, deadline = 0, time.monotonic() + TIMEOUT_S
        while sent < len(body) and not self.responses[sid].done:
            assert time.monotonic() < deadline, f"the server's window stayed shut for {TIMEOUT_S} s"
            room = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            room = min(room, chunk or room, len(body) - sent)
            if room <= 0:
                self.pump(lambda: self.conn.local_flow_control_window(sid) > 0 or self.responses[sid].done)
                continue
            last = sent + room == len(body)
            self.conn.send_data(sid, body[sent : sent + room], end_stream=end_stream and last)
            sent += room
            self.flush()
        if end_stream and not body and not self.responses[sid].done:
            self.conn.end_stream(sid)
            self.flush()

    # -- receiving
    def pump(self, until: Callable[[], bool], timeout_s: float = TIMEOUT_S, *, fail: bool = True) -> None:
        """Read and handle frames until ``until()`` holds; after ``timeout_s`` fail (or just return: ``fail=False``).

        A server that hangs up before ``until()`` holds fails the call too.
        """
        deadline = time.monotonic() + timeout_s
        self.flush()
        while not until():
            remaining = deadline - time.monotonic()
            if remaining <= 0 and not fail:
                return
            assert remaining > 0, f"no answer within {timeout_s} s"
            assert not self.closed, "the server closed the connection"
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                chunk = b""
            self.closed = not chunk
            self._inbound += chunk
            for frame, raw in split_frames(self._inbound):
                self.log.append(("received", frame))
                if isinstance(frame, GoAwayFrame):
                    self.goaways.append(frame)
                else:
                    self._handle(self.conn.receive_data(raw))
            self.flush()

    def wait(self, seconds: float) -> None:
        """Keep the connection serviced (acks, window updates) for ``seconds``."""
        self.pump(lambda: self.closed, seconds, fail=False)

    def _handle(self, events: list[Event]) -> None:
        for event in events:
            r = self.responses.get(getattr(event, "stream_id", None) or 0)
            if isinstance(event, ResponseReceived) and r is not None:
                r.headers = decode_headers(event.headers)
                r.trailers_only = r.ended = event.stream_ended is not None
            elif isinstance(event, DataReceived):
                if r is not None:
                    r.data += event.data
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, TrailersReceived) and r is not None:
                r.trailers = decode_headers(event.headers)
            elif isinstance(event, StreamEnded) and r is not None:
                r.ended = True
            elif isinstance(event, StreamReset) and r is not None and event.remote_reset:
                r.reset = event.error_code
            elif isinstance(event, PingAckReceived):
                self.pings.append(event.ping_data)
            elif isinstance(event, RemoteSettingsChanged):
                self.remote_settings_seen = True
            elif isinstance(event, SettingsAcknowledged):
                self.settings_acked = True

    def finish(self, sid: int, timeout_s: float = TIMEOUT_S) -> Response:
        self.pump(lambda: self.responses[sid].done, timeout_s)
        return self.responses[sid]

    def call(self, body: bytes, **request: Any) -> Response:
        """Send one request (``start``'s keywords) and collect its whole response."""
        return self.finish(self.start(body, **request))

    def received(self, sid: int) -> list[Frame]:
        return [f for way, f in self.log if way == "received" and f.stream_id == sid]

    def sent(self, sid: int) -> list[Frame]:
        return [f for way, f in self.log if way == "sent" and f.stream_id == sid]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def connect(address: str, *, initial_window: int | None = None) -> Client:
    """Open a connection and complete the preface both ways (RFC 9113 §3.4).

    The client's preface carries its SETTINGS (``initial_window`` as SETTINGS_INITIAL_WINDOW_SIZE); the server's
    first frame must be its SETTINGS. Returns once the server's SETTINGS are in and ours are acknowledged, so every
    later frame of the server's is sent under them.
    """
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=TIMEOUT_S)
    conn = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    values = {SettingCodes.ENABLE_PUSH: 0, SettingCodes.MAX_HEADER_LIST_SIZE: 65536}
    if initial_window is not None:
        values[SettingCodes.INITIAL_WINDOW_SIZE] = initial_window
    conn.local_settings = Settings(client=True, initial_values=values)
    conn.initiate_connection()
    client = Client(sock, conn, address)
    try:
        client.pump(lambda: client.remote_settings_seen and client.settings_acked)
    except BaseException:
        sock.close()
        raise
    first = next(f for way, f in client.log if way == "received")
    assert isinstance(first, SettingsFrame), f"the server's preface began {first}"
    assert "ACK" not in first.flags, f"the server's preface began {first}"
    return client


# ---- requests --------------------------------------------------------------------------------------------------
@functools.cache
def _digits_weights() -> tuple[np.ndarray, np.ndarray]:
    _, w, b = classifier_graph(0)  # the seed publish_classifier uses for digits
    return w, b


def infer_body(rows: int = 1, seed: int = 0, **fields: object) -> tuple[bytes, np.ndarray]:
    """A serialized ModelInferRequest for digits with ``rows`` random rows, and those rows."""
    x = np.random.default_rng(seed).standard_normal((rows, FEATURES)).astype(np.float32)
    request = digits_request(rows, **fields)
    request.raw_input_contents.append(x.tobytes())
    return request.SerializeToString(), x


def assert_logits(response: pb.ModelInferResponse, x: np.ndarray) -> None:
    assert [o.name for o in response.outputs] == ["logits"]
    got = np.frombuffer(response.raw_output_contents[0], np.float32).reshape(list(response.outputs[0].shape))
    np.testing.assert_allclose(got, classifier_reference(x, *_digits_weights()), rtol=1e-5, atol=1e-5)


def server_live(client: Client, metadata: Sequence[tuple[str, str]] = ()) -> None:
    """A ServerLive call on ``client`` answers live: the connection still serves."""
    live = grpc_message(pb.ServerLiveRequest().SerializeToString())
    r = client.call(live, path=f"{SERVICE}/ServerLive", metadata=metadata)
    assert r.status == 0, r
    assert pb.ServerLiveResponse.FromString(r.messages()[0]).live


@pytest.fixture(scope="module")
def slow(grpc_repo: Path) -> Iterator[Served]:
    """A server whose batches wait 300 ms, with a bearer token (so a call proves its last header arrived)."""
    with serve(settings_for(grpc_repo, grpc_port=0, auth_token=ADMIN_TOKEN, **SLOW)) as s:
        yield s


# ---- 1-2: calls and streams ------------------------------------------------------------------------------------
def test_a_unary_call_is_response_headers_one_message_and_trailers(served):
    """PROTOCOL-HTTP2 "Responses": HEADERS (:status 200, content-type), the message in DATA, trailers with status."""
    with connect(served.grpc) as client:
        body, x = infer_body(2, seed=1)
        sid = client.start(grpc_message(body))
        r = client.finish(sid)
        assert r.headers[":status"] == "200"
        assert r.headers["content-type"].startswith("application/grpc"), r.headers
        assert not r.trailers_only
        assert_logits(r.infer(), x)
        assert r.grpc["grpc-status"] == "0"
        frames = client.received(sid)
        kinds = [(type(f).__name__, "END_STREAM" in f.flags) for f in frames]
        assert kinds == [("HeadersFrame", False)] + [("DataFrame", False)] * (len(frames) - 2) + [
            ("HeadersFrame", True)
        ], frames


def test_twenty_concurrent_streams_on_one_connection_each_get_their_own_answer(served):
    """RFC 9113 §5: streams are independent; every request opened before any answer is read gets its own."""
    with connect(served.grpc) as client:
        assert (client.conn.remote_settings.max_concurrent_streams or 2**31) >= 20
        calls = {}
        for i in range(20):
            body, x = infer_body(1 + i % 3, seed=100 + i, id=f"call-{i}")
            calls[client.start(grpc_message(body))] = (f"call-{i}", x)
        for sid, (call_id, x) in calls.items():
            response = client.finish(sid).infer()
            assert response.id == call_id
            assert_logits(response, x)
        opened = max(n for n, (way, f) in enumerate(client.log) if way == "sent" and isinstance(f, HeadersFrame))
        answered = min(n for n, (way, f) in enumerate(client.log) if way == "received" and f.stream_id in calls)
        assert opened < answered, "a stream was answered before all twenty were open"


# ---- 3-5: flow control and framing -----------------------------------------------------------------------------
def test_a_response_larger_than_a_16_byte_window_arrives_whole_within_the_windows(served):
    """RFC 9113 §6.9: a sender never exceeds the receiver's stream or connection window; it waits for updates.

    The client's SETTINGS_INITIAL_WINDOW_SIZE is 16 and it widens a window only by what it has read (h2's window
    manager acknowledges consumed DATA), so an 8 KB response needs hundreds of WINDOW_UPDATEs.
    """
    with connect(served.grpc, initial_window=16) as client:
        body, x = infer_body(200, seed=7)
        sid = client.start(grpc_message(body))
        response = client.finish(sid).infer()
        assert_logits(response, x)
        stream_window, connection_window, data_frames = 16, 65535, 0
        for way, frame in client.log:  # wire order: an update counts once we sent it, the server saw it later
            if way == "sent" and isinstance(frame, WindowUpdateFrame):
                if frame.stream_id == 0:
                    connection_window += frame.window_increment
                elif frame.stream_id == sid:
                    stream_window += frame.window_increment
            elif way == "received" and isinstance(frame, DataFrame):
                connection_window -= frame.flow_controlled_length
                if frame.stream_id == sid:
                    stream_window -= frame.flow_controlled_length
                    data_frames += 1
                assert min(stream_window, connection_window) >= 0, (frame, stream_window, connection_window)
        assert data_frames >= len(response.SerializeToString()) // 16  # the window, not the message, cut the DATA


def test_request_headers_split_over_headers_and_continuation_frames_are_accepted(slow):
    """RFC 9113 §6.10: a header block may continue in CONTINUATION frames; the server decodes the whole block.

    The bearer token comes last, after a large custom header, so the call succeeds only if the last frame was read
    (without it the server answers UNAUTHENTICATED). The header list is 20 KiB when the server's
    SETTINGS_MAX_HEADER_LIST_SIZE admits that; else 8 KiB, the request-header limit PROTOCOL-HTTP2 suggests servers
    default to (the setting is advisory, RFC 9113 §6.5.2: grpcio advertises 16 KiB yet refuses a random share of
    calls over 8 KiB).
    """
    with connect(slow.grpc) as client:
        limit = min(20 * 1024, client.conn.remote_settings.max_header_list_size or 20 * 1024)
        limit = 8 * 1024 if limit < 20 * 1024 else limit
        fields = [(":method", "POST"), (":scheme", "http"), (":path", INFER), (":authority", slow.grpc)]
        fields += [("te", "trailers"), ("content-type", "application/grpc"), *AUTH]
        used = sum(len(k) + len(v) + 32 for k, v in fields) + len("x-big-header") + 32  # RFC 9113 §6.5.2's sizes
        big = ("x-big-header", "".join(chr(0x21 + (i * 7) % 90) for i in range(limit - used - 64)))
        body, x = infer_body(1, seed=3)
        refused = client.call(grpc_message(body), metadata=[big], header_frame_size=1024)
        assert refused.status == 16, refused.grpc  # UNAUTHENTICATED: the block really carries no token
        sid = client.start(grpc_message(body), metadata=[big, *AUTH], header_frame_size=1024)
        assert_logits(client.finish(sid).infer(), x)
        sent = client.sent(sid)
        continuations = [f for f in sent if isinstance(f, ContinuationFrame)]
        assert isinstance(sent[0], HeadersFrame)
        assert "END_HEADERS" not in sent[0].flags
        assert len(continuations) >= 3, sent
        assert "END_HEADERS" in continuations[-1].flags


def test_a_request_message_cut_into_10_byte_data_frames_is_reassembled(served):
    """PROTOCOL-HTTP2 "Data Frames": DATA frame boundaries have no relation to message boundaries."""
    with connect(served.grpc) as client:
        body, x = infer_body(1, seed=5)
        sid = client.start(grpc_message(body), chunk=10)
        assert_logits(client.finish(sid).infer(), x)
        data = [f for f in client.sent(sid) if isinstance(f, DataFrame)]
        assert len(data) >= (len(body) + 5) // 10
        assert max(len(f.data) for f in data) == 10


# ---- 6-7: connection-level frames, resets ----------------------------------------------------------------------
def test_ping_is_echoed_and_unknown_frame_types_are_ignored(served):
    """RFC 9113 §6.7: a PING is answered by a PING ACK with the same payload; §4.1/§5.5: frames of unknown types
    are ignored, on the connection and on an open stream alike."""
    with connect(served.grpc) as client:
        client.conn.ping(b"mp-ping1")
        client.pump(lambda: b"mp-ping1" in client.pings)
        unknown = bytes([0, 0, 7, 0xFA, 0]) + (0).to_bytes(4, "big") + b"ignored"
        client.send_raw(unknown)  # on stream 0
        body, x = infer_body(1, seed=6)
        sid = client.start(None)  # headers only; an unknown frame on the open stream before its message
        client.send_raw(bytes([0, 0, 7, 0xFA, 0x5]) + sid.to_bytes(4, "big") + b"ignored")
        client.send_body(sid, grpc_message(body))
        assert_logits(client.finish(sid).infer(), x)
        client.conn.ping(b"mp-ping2")
        client.pump(lambda: b"mp-ping2" in client.pings)
        assert sum(isinstance(f, ExtensionFrame) for way, f in client.log if way == "sent") == 2
        assert client.goaways == []


def test_a_stream_reset_by_the_client_cancels_its_call_and_the_connection_keeps_serving(slow):
    """RFC 9113 §6.4 / PROTOCOL-HTTP2 "Client Cancellation": RST_STREAM(CANCEL) cancels that call only.

    The call is still waiting for its batch (300 ms) when reset: the server counts it as the client's (cancelled),
    not as served, and the next stream on the same connection is answered.
    """
    before = _grpc_outcomes(slow.url)
    with connect(slow.grpc) as client:
        body, x = infer_body(1, seed=8)
        sid = client.start(grpc_message(body), metadata=AUTH)
        client.wait(0.1)
        client.conn.reset_stream(sid, ErrorCodes.CANCEL)
        client.flush()
        follow = client.start(grpc_message(body), metadata=AUTH)
        assert_logits(client.finish(follow).infer(), x)
        assert client.goaways == []
    deadline = time.monotonic() + 5
    while _grpc_outcomes(slow.url).get("client_error", 0) == before.get("client_error", 0):
        assert time.monotonic() < deadline, "the reset call was not counted as cancelled by the client"
        time.sleep(0.05)
    after = _grpc_outcomes(slow.url)
    assert after.get("success", 0) == before.get("success", 0) + 1  # the follow-up only, not the reset call


# ---- 8-9: what is not a gRPC call ------------------------------------------------------------------------------
@pytest.mark.parametrize("path", [f"{SERVICE}/ModelStreamInfer", "/no.such.Service/Method"])
def test_an_unknown_method_is_a_trailers_only_unimplemented(served, path):
    """PROTOCOL-HTTP2 "Responses": an immediate error may be Trailers-Only (:status 200, content-type, status in
    one HEADERS frame with END_STREAM); a method the server does not have is UNIMPLEMENTED (12)."""
    with connect(served.grpc) as client:
        r = client.call(grpc_message(b""), path=path)
        assert r.trailers_only, r
        assert not r.data
        assert r.headers[":status"] == "200"
        assert r.headers["content-type"].startswith("application/grpc")
        assert r.status == 12, r.headers


def test_a_content_type_other_than_application_grpc_is_answered_415(served):
    """PROTOCOL-HTTP2: "If Content-Type does not begin with "application/grpc", gRPC servers SHOULD respond with
    HTTP status of 415 (Unsupported Media Type)", so no plain HTTP/2 client takes the error for a success."""
    with connect(served.grpc) as client:
        body, _ = infer_body(1)
        r = client.call(grpc_message(body), content_type="text/plain")
        assert r.reset is None, r
        assert r.headers.get(":status") == "415", r
        server_live(client)


def test_a_get_is_not_served_as_a_call(served):
    """PROTOCOL-HTTP2 defines a call as ``:method POST`` and says nothing of other methods; HTTP (RFC 9110 §15.5.6)
    answers a method the resource does not support with 405 and an Allow header. Either that or a gRPC error is
    a refusal; answering the call is not."""
    with connect(served.grpc) as client:
        body, _ = infer_body(1)
        r = client.call(grpc_message(body), method="GET")
        status = r.headers.get(":status")
        if status == "405":
            assert "POST" in r.headers.get("allow", ""), r.headers  # RFC 9110: a 405 MUST carry Allow
        else:
            assert r.reset is not None or (status == "200" and r.status != 0), r
        assert not (status == "200" and r.messages()), r
        server_live(client)


def test_http1_on_the_grpc_port_is_refused_and_the_port_keeps_serving(served):
    """RFC 9113 §3.4: a connection that does not open with the HTTP/2 preface is a PROTOCOL_ERROR: the server
    closes it (a GOAWAY may be sent first). Nothing it sends back may read as an HTTP/1.1 success."""
    host, port = served.grpc.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=TIMEOUT_S) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: " + served.grpc.encode() + b"\r\nConnection: close\r\n\r\n")
        answer, deadline = b"", time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            answer += chunk
        else:
            pytest.fail(f"the connection was not closed within {TIMEOUT_S} s")
    assert not re.match(rb"HTTP/1\.[01] [23]", answer), answer[:200]
    with connect(served.grpc) as client:
        server_live(client)


# ---- 10-13: messages, encodings, deadlines, metadata -----------------------------------------------------------
def test_a_message_shorter_than_its_length_prefix_is_a_grpc_error_not_a_hang(served):
    """A stream that ends inside a message (the prefix says 100 bytes, 10 came) is a failed call: PROTOCOL-HTTP2's
    Request is whole messages then EOS, so there is nothing to wait for. An error status in trailers, at once,
    with the connection left serving."""
    with connect(served.grpc) as client:
        sid = client.start(grpc_message(b"\x0a\x08" + b"x" * 8, declared=100))
        r = client.finish(sid, timeout_s=3)  # an answer needs no waiting: the stream is over
        assert r.reset is None, f"the stream was reset ({r.reset}) instead of answered with a status"
        assert r.status not in (0, None), r.grpc
        assert client.goaways == []
        server_live(client)


def test_a_gzip_compressed_request_is_answered(served):
    """PROTOCOL-HTTP2 Message-Encoding: with ``grpc-encoding: gzip`` a message flagged 1 is gzip-compressed."""
    with connect(served.grpc) as client:
        body, x = infer_body(2, seed=11)
        packed = grpc_message(gzip.compress(body), compressed=True)
        r = client.call(packed, metadata=[("grpc-encoding", "gzip"), ("grpc-accept-encoding", "identity,gzip")])
        assert_logits(r.infer(), x)


def test_an_unsupported_encoding_is_unimplemented_naming_the_supported_ones(served):
    """compression.md: a message compressed with an algorithm the server does not support fails UNIMPLEMENTED,
    and the response's grpc-accept-encoding lists what the server accepts (not the one used)."""
    with connect(served.grpc) as client:
        body, _ = infer_body(1)
        r = client.call(grpc_message(body, compressed=True), metadata=[("grpc-encoding", "snappy")])
        assert r.status == 12, r.grpc
        accepted = {**r.headers, **(r.trailers or {})}.get("grpc-accept-encoding")
        assert accepted is not None, r
        assert "snappy" not in {e.strip() for e in accepted.split(",")}, r
        server_live(client)


def test_a_compressed_flag_without_an_encoding_is_internal(served):
    """compression.md test case 6: Compressed-Flag 1 with no grpc-encoding (other than identity) fails INTERNAL."""
    with connect(served.grpc) as client:
        body, _ = infer_body(1)
        assert client.call(grpc_message(body, compressed=True)).status == 13


def test_grpc_timeout_ends_a_pending_call_at_its_deadline(slow):
    """PROTOCOL-HTTP2 Timeout: ``grpc-timeout: 50m`` is 50 ms. When it expires the server cancels the call
    ("send RST_STREAM with CANCEL"), or answers DEADLINE_EXCEEDED (4) in trailers; either comes long before the
    300 ms batch would have answered."""
    with connect(slow.grpc) as client:
        body, _ = infer_body(1)
        began = time.monotonic()
        r = client.finish(client.start(grpc_message(body), timeout="50m", metadata=AUTH), timeout_s=2)
        elapsed = time.monotonic() - began
        if r.reset is not None:
            assert r.reset == ErrorCodes.CANCEL, r
        else:
            assert r.status == 4, r.grpc
        assert elapsed < 1.0, elapsed
        server_live(client, AUTH)


def test_binary_metadata_is_accepted_padded_or_not(served):
    """PROTOCOL-HTTP2 Binary-Header: "-bin" values are base64; servers MUST accept padded and un-padded values."""
    with connect(served.grpc) as client:
        value = base64.b64encode(b"\x00\xffbinary\x01\x02").decode()
        assert value.endswith("==")
        body, x = infer_body(1, seed=12)
        r = client.call(grpc_message(body), metadata=[("x-test-bin", value), ("x-other-bin", value.rstrip("="))])
        assert_logits(r.infer(), x)


def test_grpc_message_is_percent_encoded_utf8(served):
    """PROTOCOL-HTTP2 Status-Message: UTF-8, then percent-encoded: bytes outside 0x20-0x7E and '%' as %XX.

    A model name with 'í' and '%' is refused INVALID_ARGUMENT with a message quoting the name.
    """
    with connect(served.grpc) as client:
        request = pb.ModelInferRequest(model_name="dígits%")
        request.inputs.add(name="input", datatype="FP32", shape=[1, FEATURES])
        request.raw_input_contents.append(b"\0" * 4 * FEATURES)
        r = client.call(grpc_message(request.SerializeToString()))
        assert r.status == 3, r.grpc
        raw = r.grpc["grpc-message"]
        assert PERCENT_ENCODED.fullmatch(raw), raw
        assert "%C3%AD" in raw, raw  # í in UTF-8
        assert "%25" in raw, raw  # %
        assert unquote(raw, errors="strict").startswith("invalid model name 'dígits%'"), raw


# ---- 14: stopping ----------------------------------------------------------------------------------------------
def test_stopping_the_server_sends_goaway_and_answers_the_call_in_flight(grpc_repo):
    """PROTOCOL-HTTP2 "GOAWAY Frame" / RFC 9113 §6.8: a stopping server sends GOAWAY naming the last stream it
    accepted, finishes that work, then closes the connection.

    The call waits 600 ms for its batch; the server is stopped (the fixture's exit, as uvicorn's shutdown runs the
    app's lifespan end) 50 ms in, from another thread while this one reads the connection.
    """
    stack = ExitStack()
    s = stack.enter_context(serve(settings_for(grpc_repo, grpc_port=0, **{**SLOW, "max_queue_delay_us": 600_000})))
    stopper = threading.Thread(target=stack.close, daemon=True)
    try:
        with connect(s.grpc) as client:
            body, x = infer_body(1, seed=13)
            sid = client.start(grpc_message(body))
            client.wait(0.05)
            stopper.start()
            assert_logits(client.finish(sid).infer(), x)
            client.pump(lambda: client.closed)  # then the server closes the connection
    finally:
        if stopper.ident is not None:
            stopper.join(timeout=30)
        else:  # failed before the stop began
            stack.close()
    assert client.goaways, "no GOAWAY before the connection closed"
    assert all(g.error_code == ErrorCodes.NO_ERROR for g in client.goaways), client.goaways
    assert client.goaways[-1].last_stream_id >= sid
    first_goaway = next(n for n, (way, f) in enumerate(client.log) if isinstance(f, GoAwayFrame))
    trailers = max(n for n, (way, f) in enumerate(client.log) if way == "received" and f.stream_id == sid)
    assert first_goaway < trailers, "the GOAWAY came only after the call was answered: nothing was in flight"


# ---- the connection alone, on an in-memory transport -------------------------------------------------------------
class MemoryTransport:
    """What ``Http2Connection`` writes, kept; closing is recorded."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True


class HeldRequests:
    """A stream handler that keeps every complete request and answers nothing."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    def on_request(self, connection: Any, stream: Any) -> None:
        self.requests.append(stream)

    def on_oversized(self, connection: Any, stream: Any) -> None:
        raise AssertionError("no body here passes max_body")


def memory_connection(limits: Any) -> tuple[Any, MemoryTransport, HeldRequests]:
    from modelpress.serving.grpc.http2 import PREFACE, Http2Connection

    transport, handler = MemoryTransport(), HeldRequests()
    connection = Http2Connection(handler, limits, set())
    connection.connection_made(transport)  # type: ignore[arg-type]
    connection.data_received(PREFACE + SettingsFrame(0).serialize())
    return connection, transport, handler


def connection_credit(transport: MemoryTransport) -> int:
    """The connection-level window the server has granted so far beyond the initial 65,535 bytes (and clears)."""
    granted = sum(
        f.window_increment
        for f, _ in split_frames(transport.written)
        if isinstance(f, WindowUpdateFrame) and f.stream_id == 0
    )
    return granted


def open_stream(stream_id: int) -> bytes:
    import hpack

    block = hpack.Encoder().encode(
        [(":method", "POST"), (":path", INFER), (":scheme", "http"), ("content-type", "application/grpc")]
    )
    headers = HeadersFrame(stream_id, block)
    headers.flags.add("END_HEADERS")
    return headers.serialize()


def test_bodies_held_past_the_limit_stop_the_connection_window_until_requests_complete():
    """Many streams that never end cannot make the server hold more than max_body plus one connection window."""
    from modelpress.serving.grpc.http2 import Limits

    limits = Limits(max_body=1000, connection_window=1 << 17)
    connection, transport, handler = memory_connection(limits)
    window = 65_535 + connection_credit(transport)  # the client's view of what it may send
    sent, stream_id = 0, 1
    while window >= 900 and stream_id < 2001:  # 900 bytes on a new stream each time, as long as the window allows
        connection.data_received(open_stream(stream_id) + DataFrame(stream_id, b"x" * 900).serialize())
        sent, window, stream_id = sent + 900, window - 900, stream_id + 2
        window += connection_credit(transport)
    assert not transport.closed
    assert window < 900  # the client had to stop: the server stopped crediting
    assert limits.max_held < sent <= limits.max_held + limits.connection_window
    ending = DataFrame(1, b"")
    ending.flags.add("END_STREAM")
    for finished in range(1, 1 + 2 * 150, 2):  # 150 requests complete: their bodies go to the handler
        ending.stream_id = finished
        connection.data_received(ending.serialize())
    assert len(handler.requests) == 150
    assert connection_credit(transport) > 0  # held bytes fell under the limit: the window comes back


def test_data_beyond_the_connection_window_is_a_flow_control_error():
    """A client that sends on past the window it was given ends its connection (RFC 9113 §6.9.1)."""
    from modelpress.serving.grpc.http2 import Limits

    connection, transport, _ = memory_connection(Limits(max_body=1000, connection_window=1 << 17))
    transport.written.clear()
    for stream_id in range(1, 801, 2):  # 400 streams × 900 bytes, never waiting: past the held limit, then the window
        connection.data_received(open_stream(stream_id) + DataFrame(stream_id, b"x" * 900).serialize())
        if transport.closed:
            break
    assert transport.closed
    goaway = [f for f, _ in split_frames(transport.written) if isinstance(f, GoAwayFrame)]
    assert goaway
    assert goaway[-1].error_code == ErrorCodes.FLOW_CONTROL_ERROR
    assert b"beyond the connection's window" in goaway[-1].additional_data


def test_random_frames_never_raise_and_at_worst_end_the_connection_with_goaway():
    """Whatever a peer sends, the connection answers, resets a stream or says GOAWAY: never an exception.

    Frames are drawn mostly plausible (a few streams, the flags their types use, payloads of the right sizes)
    so that calls start, run and collide with resets, window changes and settings; some are garbage.
    """
    import asyncio
    import random

    import hpack

    from modelpress.serving.grpc.calls import GrpcHandler, Method
    from modelpress.serving.grpc.http2 import PREFACE, Http2Connection, Limits

    answered = []

    async def echo(raw: bytes, _call: Any) -> bytes:
        answered.append(raw)
        return raw

    request = hpack.Encoder().encode(
        [(":method", "POST"), (":path", "/s/Echo"), (":scheme", "http"), ("content-type", "application/grpc")]
    )

    def payload_for(kind: int, rng: random.Random) -> bytes:
        if rng.random() < 0.1:
            return rng.randbytes(rng.choice([0, 1, 5, 40]))  # garbage of any size
        if kind in (1, 9):  # HEADERS / CONTINUATION: the request's block, whole or a piece
            return request if rng.random() < 0.7 else request[: rng.randint(0, len(request))]
        if kind == 0:
            return grpc_message(rng.randbytes(rng.choice([0, 3, 3, 2000])))  # 2000: over the 1000-byte limit
        if kind == 4:
            return b"".join(
                struct.pack(">HI", rng.randint(1, 8), rng.choice([0, 1, 16384, 65535, 2**31]))
                for _ in range(rng.randint(0, 2))
            )
        return rng.randbytes({3: 4, 6: 8, 7: 8, 8: 4, 2: 5}.get(kind, rng.randint(0, 8)))

    async def fuzz() -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
        rng = random.Random(0)
        for _ in range(1500):
            transport = MemoryTransport()
            connection = Http2Connection(GrpcHandler({"/s/Echo": Method(echo, bytes)}, 1000), Limits(1005), set())
            connection.connection_made(transport)  # type: ignore[arg-type]
            connection.data_received(PREFACE + SettingsFrame(0).serialize())
            opened = [-1]  # stream ids the fuzz has opened, newest last
            if rng.random() < 0.5:  # half the connections start with a whole call, then go astray
                headers, ending = HeadersFrame(1, request), DataFrame(1, grpc_message(b"abc"))
                headers.flags.add("END_HEADERS")
                ending.flags.add("END_STREAM")
                connection.data_received(headers.serialize() + ending.serialize())
                opened.append(1)
            for _ in range(rng.randint(1, 16)):
                kind = rng.choice([1, 1, 1, 0, 0, 0, 0, 9, 8, 8, 3, 4, 6, 2, 7, 0xFA, rng.randint(0, 255)])
                if kind == 1 and rng.random() < 0.8:  # mostly a new stream, as a client opens them
                    opened.append(opened[-1] + 2)
                    stream_id = opened[-1]
                elif rng.random() < 0.1:
                    stream_id = rng.choice([0, 2, rng.randint(0, 2**31 - 1)])  # wrong for the type, or unknown
                else:  # connection frames on 0, stream frames on a stream the fuzz opened
                    stream_id = 0 if kind in (4, 6, 7) or (kind == 8 and rng.random() < 0.5) else max(1, opened[-1])
                flags = rng.choice({1: [4, 4, 5, 0, 0x2D], 0: [0, 1, 1, 9], 9: [0, 4]}.get(kind, [0, 1]))
                payload = payload_for(kind, rng)
                if flags & 0x8 and kind in (0, 1):  # PADDED: a pad length and that much padding
                    payload = bytes([3]) + payload + b"\0\0\0"
                if flags & 0x20 and kind == 1:  # PRIORITY: five bytes before the block
                    payload = b"\0\0\0\0\x10" + payload
                raw = len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream_id.to_bytes(4, "big") + payload
                connection.data_received(raw)
                await asyncio.sleep(0)  # the calls started run and answer
                if transport.closed:
                    frames = [f for f, _ in split_frames(transport.written)]
                    assert isinstance(frames[-1], GoAwayFrame)
                    break
            connection.connection_lost(None)
            await asyncio.sleep(0)
        return errors

    assert asyncio.run(fuzz()) == []
    assert len(answered) > 100  # the plausible frames did make calls
