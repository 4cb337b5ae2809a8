"""HTTP/2 (RFC 9113), the part a gRPC server needs, as an asyncio protocol on the server's event loop.

Why not grpcio's server: on one event loop its per-call work (completion-queue events relayed by a poller thread,
Cython glue, a task and several wake-ups per call) cost the loop about as much as REST's whole inference path,
and calls reached the batcher one or two at a time (benchmarks/results/20261207-grpc-throughput.md). Here a
connection is parsed in ``data_received`` like uvicorn's HTTP/1.1: many frames per wake-up, one task per request.

What is implemented: the connection preface and SETTINGS, HEADERS with CONTINUATION, padding and priority
fields skipped, DATA, flow control both ways (the client's windows are respected and ours are replenished as data
arrives), PING, RST_STREAM, GOAWAY both ways, and errors as RFC 9113 asks (a connection error ends the connection
with GOAWAY naming it; a stream error resets only that stream). What is not: server push (gRPC does not use it),
priorities (ignored, as the RFC allows), and the HTTP/1.1 upgrade to h2c (gRPC clients speak HTTP/2 directly).
Header blocks are decoded and written by ``header_block.py``; the server's own blocks are literals that never
touch the dynamic table, so the peer's table size does not matter to them.

The connection knows nothing of gRPC: it hands each complete request to a :class:`StreamHandler`
(``serving/grpc/calls.py``) and sends what that answers.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol, cast

from modelpress.serving.grpc.header_block import HeaderBlockError, HeaderDecoder

log = logging.getLogger("serving")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HTTP1_METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"OPTIONS ", b"PATCH ", b"CONNECT ")

_FRAME_HEADER = struct.Struct(">BHBBI")  # length (24 bits, as 8 + 16), type, flags, stream id
DEFAULT_WINDOW = 65_535
DEFAULT_FRAME_SIZE = 16_384
MAX_WINDOW = 2**31 - 1

# Our receive windows: large enough that a client rarely waits for a WINDOW_UPDATE, replenished at half.
STREAM_WINDOW = 1 << 20
MAX_HEADER_LIST = 64 << 10  # decoded headers of one request (grpcio refuses past 16 KiB by default)


class Frame(IntEnum):
    DATA = 0
    HEADERS = 1
    PRIORITY = 2
    RST_STREAM = 3
    SETTINGS = 4
    PUSH_PROMISE = 5
    PING = 6
    GOAWAY = 7
    WINDOW_UPDATE = 8
    CONTINUATION = 9


class Flag:
    END_STREAM = 0x1
    ACK = 0x1
    END_HEADERS = 0x4
    PADDED = 0x8
    PRIORITY = 0x20


class Setting(IntEnum):
    HEADER_TABLE_SIZE = 1
    ENABLE_PUSH = 2
    MAX_CONCURRENT_STREAMS = 3
    INITIAL_WINDOW_SIZE = 4
    MAX_FRAME_SIZE = 5
    MAX_HEADER_LIST_SIZE = 6


class ErrorCode(IntEnum):
    NO_ERROR = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2
    FLOW_CONTROL_ERROR = 3
    STREAM_CLOSED = 5
    FRAME_SIZE_ERROR = 6
    REFUSED_STREAM = 7
    CANCEL = 8
    COMPRESSION_ERROR = 9


class ConnectionProtocolError(Exception):
    """A connection error (RFC 9113 §5.4.1): the connection ends with a GOAWAY carrying ``code`` and the message."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def frame(kind: Frame, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream_id.to_bytes(4, "big") + payload


def rst_stream_frame(stream_id: int, code: ErrorCode) -> bytes:
    return frame(Frame.RST_STREAM, 0, stream_id, code.to_bytes(4, "big"))


def goaway_frame(last_stream: int, code: ErrorCode, debug: bytes = b"") -> bytes:
    return frame(Frame.GOAWAY, 0, 0, last_stream.to_bytes(4, "big") + code.to_bytes(4, "big") + debug)


def _unpad(flags: int, payload: bytes) -> bytes:
    if not flags & Flag.PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise ConnectionProtocolError(ErrorCode.PROTOCOL_ERROR, "padding as long as the frame or longer")
    return payload[1 : len(payload) - payload[0]]


@dataclass(eq=False, slots=True)
class Stream:
    """One request and its answer. ``headers`` are as decoded; ``body`` is every DATA byte, padding removed."""

    id: int
    headers: tuple[tuple[str, str], ...]
    send_window: int
    body: bytearray = field(default_factory=bytearray)
    remote_closed: bool = False
    local_closed: bool = False
    reset: bool = False  # the peer reset it or the connection went away: nothing more is sent
    unacked: int = 0  # bytes received since our last WINDOW_UPDATE for the stream (its window used)
    held: int = 0  # DATA bytes of the request held until it is complete or dropped
    pending: bytes = b""  # DATA waiting for window
    trailers: bytes | None = None  # the last header block, sent once ``pending`` is out
    task: asyncio.Task | None = None  # the handler answering it, cancelled if the peer resets the stream
    expired: bool = False  # the caller's deadline passed (set by the gRPC layer before it cancels ``task``)
    timer: asyncio.TimerHandle | None = None


class StreamHandler(Protocol):
    def on_request(self, connection: Http2Connection, stream: Stream) -> None:
        """The request is complete (END_STREAM): answer it through the connection's send methods."""

    def on_oversized(self, connection: Http2Connection, stream: Stream) -> None:
        """The body passed ``max_body``: answer now (the connection then resets the stream and drops the rest)."""


@dataclass(frozen=True)
class Limits:
    """What one connection may make the server hold.

    Request bodies still arriving are held in memory; the connection's window is given back to the client only
    while they add up to at most ``max_body`` plus one window, so a client opening many streams and never ending
    them stalls itself instead of growing the server.
    """

    max_body: int  # bytes of DATA per stream (a gRPC message plus its 5-byte prefix)
    max_streams: int = 1024  # concurrent streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS)
    connection_window: int = 16 << 20  # our receive window for the whole connection, replenished at half

    @property
    def max_held(self) -> int:
        return self.max_body + self.connection_window


class Http2Connection(asyncio.Protocol):
    """One client connection: frames in, requests to the handler, answers out under the client's flow control."""

    def __init__(self, handler: StreamHandler, limits: Limits, connections: set[Http2Connection]) -> None:
        self.handler = handler
        self.limits = limits
        self.streams: dict[int, Stream] = {}
        self._connections = connections
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._preface_seen = False
        self._decoder = HeaderDecoder(MAX_HEADER_LIST)
        self._continuation: tuple[int, int, bytearray] | None = None  # stream, HEADERS flags, block so far
        self._last_stream = 0
        self._send_window = DEFAULT_WINDOW
        self._peer_initial_window = DEFAULT_WINDOW
        self._peer_max_frame = DEFAULT_FRAME_SIZE
        self._unacked = 0  # bytes received since our last connection WINDOW_UPDATE (the window used)
        self._held = 0  # bytes of requests still arriving, over every stream (Limits.max_held)
        self._out: list[bytes] | None = None  # writes gathered while parsing, sent as one
        self._closing = False  # a GOAWAY was sent or received: no new streams, close when idle
        self._goaway_sent = False

    # ---- asyncio ------------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        self._transport = transport
        self._connections.add(self)
        settings = struct.pack(
            ">HIHIHI",
            Setting.MAX_CONCURRENT_STREAMS,
            self.limits.max_streams,
            Setting.INITIAL_WINDOW_SIZE,
            STREAM_WINDOW,
            Setting.MAX_HEADER_LIST_SIZE,
            MAX_HEADER_LIST,
        )
        grow = (self.limits.connection_window - DEFAULT_WINDOW).to_bytes(4, "big")
        transport.write(frame(Frame.SETTINGS, 0, 0, settings) + frame(Frame.WINDOW_UPDATE, 0, 0, grow))

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._transport = None
        for stream in self.streams.values():
            self._abandon(stream)
        self.streams.clear()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        offset = 0
        self._out = []
        try:
            if not self._preface_seen:
                if len(buffer) < len(PREFACE):
                    if not PREFACE.startswith(bytes(buffer)):
                        self._not_http2()
                    return
                if buffer[: len(PREFACE)] != PREFACE:
                    self._not_http2()
                    return
                self._preface_seen = True
                offset = len(PREFACE)
            end = len(buffer)
            while end - offset >= 9:
                high, low, kind, flags, stream_id = _FRAME_HEADER.unpack_from(buffer, offset)
                length = high << 16 | low
                if length > DEFAULT_FRAME_SIZE:  # our SETTINGS_MAX_FRAME_SIZE is the default
                    raise ConnectionProtocolError(ErrorCode.FRAME_SIZE_ERROR, f"frame of {length} bytes over 16384")
                if end - offset - 9 < length:
                    break
                stream_id &= 0x7FFFFFFF
                payload = bytes(buffer[offset + 9 : offset + 9 + length])
                offset += 9 + length
                self._frame(kind, flags, stream_id, payload)
                if self._transport is None:
                    return
        except ConnectionProtocolError as e:
            self._fail(e)
            return
        finally:
            del buffer[:offset]
            self._flush_out()
            self._out = None

    def eof_received(self) -> bool:
        return False  # the peer stopped sending: close (its streams' handlers are cancelled in connection_lost)

    # ---- frames in ----------------------------------------------------------------------------------------
    def _frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self._continuation is not None and kind != Frame.CONTINUATION:
            raise ConnectionProtocolError(ErrorCode.PROTOCOL_ERROR, "a header block was interrupted by another frame")
        if kind == Frame.DATA:
            self._data(flags, stream_id, payload)
        elif kind == Frame.HEADERS:
            self._headers(flags, stream_id, payload)
        elif kind == Frame.CONTINUATION:
            self._continuation_frame(flags, stream_id, payload)
        elif kind == Frame.SETTINGS:
            self._settings(flags, stream_id, payload)
        elif kind == Frame.WINDOW_UPDATE:
            self._window_update(stream_id, payload)
        elif kind == Frame.PING:
            if stream_id != 0 or len(payload) != 8:
                raise ConnectionProtocolError(ErrorCode.PROTOCOL_ERROR, "PING must be 8 bytes on stream 0")
            if not flags & Flag.ACK:
                self._write(frame(Frame.PING, Flag.ACK, 0, payload))
        elif kind == Frame.RST_STREAM:
            if stream_id == 0 or len(payload) != 4:
                raise ConnectionProtocolError(ErrorCode.PROTOCOL_ERROR, "RST_STREAM must be 4 bytes on a stream")
            stream = self.streams.pop(stream_id, None)
            if stream is not None:
                self._abandon(stream)
                self._close_if_done()
        elif kind == Frame.GOAWAY:
            self._closing = True
            self._close_if_done()
        elif kind == Frame.PUSH_PROMISE:
            raise ConnectionProtocolError(ErrorCode.PROTOCOL_ERROR, "a client must not send PUSH_PROMISE")
        # PRIORITY and frame types this version does not know are ignored (RFC 9113 §5.3.2, §5.5).

    def _headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise ConnectionProtocolError(ErrorCode.PROTOCOL_ERROR, "HEADERS on stream 0")
        block = _unpad(flags, payload)
        if flags & Flag.PRIORITY:
            block = block[5:]
        if flags & Flag.END_HEADERS:
            self._header_block(stream_id, flags, block)
        else:
            self._continuation = (stream_id, flags, bytearray(block))

    def _continuation_frame(self, flags: int, stream_id: int, payload: bytes) -> None:
        if self._continuation is None or self._continuation[0] != stream_id:
            raise ConnectionProtocolError(ErrorCode.PROTOCOL_ERROR, "CONTINUATION without a header block to continue")
        _, first_flags, block = self._continuation
        block += payload
        if len(block) > MAX_HEADER_LIST:
            raise ConnectionProtocolError(ErrorCode.PROTOCOL_ERROR, f"header block over {MAX_HEADER_LIST} bytes")
        if flags & Flag.END_HEADERS:
            self._continuation = None
            self._header_block(stream_id, first_flags, bytes(block))

    def _header_block(self, stream_id: int, flags: int, block: bytes) -> None:
        try:  # decoded even for a stream refused below: the decoder's table must follow the peer's encoder
            headers = self._decoder.decode(block)
        except HeaderBlockError as e:
            raise ConnectionProtocolError(ErrorCode.COMPRESSION_ERROR, f"header block cannot be decoded: {e}") from e
        stream = self.streams.get(stream_id)
        if stream is not None:  # trailers from the client end its request
            if not flags & Flag.END_STREAM or stream.remote_closed:
                raise ConnectionProtocolError(ErrorCode.PROTOCOL_ERROR, "a second header block must end the stream")
            self._remote_end(stream)
            return
        if stream_id <= self._last_stream:  # a stream that ended (answered early, or reset)
            self._write(rst_stream_frame(stream_id, ErrorCode.STREAM_CLOSED))
            return
        if stream_id % 2 == 0:
            raise ConnectionProtocolError(ErrorCode.PROTOCOL_ERROR, "a client's streams have odd ids")
        self._last_stream = stream_id
        if self._closing or len(self.streams) >= self.limits.max_streams:
            self._write(rst_stream_frame(stream_id, ErrorCode.REFUSED_STREAM))
            return
        stream = Stream(stream_id, headers, self._peer_initial_window)
        self.streams[stream_id] = stream
        if flags & Flag.END_STREAM:
            self._remote_end(stream)

    def _data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise ConnectionProtocolError(ErrorCode.PROTOCOL_ERROR, "DATA on stream 0")
        self._unacked += len(payload)  # the connection's window counts every DATA byte, padding included
        if self._unacked > self.limits.connection_window:
            raise ConnectionProtocolError(ErrorCode.FLOW_CONTROL_ERROR, "DATA beyond the connection's window")
        stream = self.streams.get(stream_id)
        if stream is None or stream.remote_closed:
            if stream_id > self._last_stream:
                raise ConnectionProtocolError(ErrorCode.PROTOCOL_ERROR, "DATA on a stream that was never opened")
            self._credit()
            return  # a stream answered early or reset: the rest of its data is dropped
        stream.unacked += len(payload)  # our SETTINGS_INITIAL_WINDOW_SIZE is its window
        if stream.unacked > STREAM_WINDOW:
            self.reset_stream(stream, ErrorCode.FLOW_CONTROL_ERROR)
            return
        stream.held += len(payload)
        self._held += len(payload)
        self._credit()
        stream.body += _unpad(flags, payload)
        if len(stream.body) > self.limits.max_body:
            self.handler.on_oversized(self, stream)  # its answer ends the stream and resets the rest (_local_end)
            if not stream.local_closed:  # the handler did not answer: nothing else will
                self.reset_stream(stream, ErrorCode.INTERNAL_ERROR)
            return
        if flags & Flag.END_STREAM:
            self._remote_end(stream)
            return
        if stream.unacked >= STREAM_WINDOW // 2:
            self._write(frame(Frame.WINDOW_UPDATE, 0, stream_id, stream.unacked.to_bytes(4, "big")))
            stream.unacked = 0

    def _settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != 0:
            raise ConnectionProtocolError(ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & Flag.ACK:
            return
        if len(payload) % 6:
            raise ConnectionProtocolError(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS not a multiple of 6 bytes")
        grown = False
        for offset in range(0, len(payload), 6):
            ident, value = struct.unpack_from(">HI", payload, offset)
            if ident == Setting.INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise ConnectionProtocolError(ErrorCode.FLOW_CONTROL_ERROR, "initial window over 2^31-1")
                delta = value - self._peer_initial_window
                self._peer_initial_window = value
                for stream in self.streams.values():
                    stream.send_window += delta
                grown = grown or delta > 0
            elif ident == Setting.MAX_FRAME_SIZE:
                if not DEFAULT_FRAME_SIZE <= value <= 2**24 - 1:
                    raise ConnectionProtocolError(ErrorCode.PROTOCOL_ERROR, f"max frame size {value} out of range")
                self._peer_max_frame = value
            elif ident == Setting.ENABLE_PUSH and value > 1:
                raise ConnectionProtocolError(ErrorCode.PROTOCOL_ERROR, "ENABLE_PUSH must be 0 or 1")
            # HEADER_TABLE_SIZE: our header blocks never use the dynamic table; the others do not bind a server.
        self._write(frame(Frame.SETTINGS, Flag.ACK, 0))
        if grown:
            self._flush_all()

    def _window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise ConnectionProtocolError(ErrorCode.FRAME_SIZE_ERROR, "WINDOW_UPDATE must be 4 bytes")
        increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
        if stream_id == 0:
            if increment == 0:
                raise ConnectionProtocolError(ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self._send_window += increment
            if self._send_window > MAX_WINDOW:
                raise ConnectionProtocolError(ErrorCode.FLOW_CONTROL_ERROR, "connection window over 2^31-1")
            self._flush_all()
            return
        stream = self.streams.get(stream_id)
        if stream is None:
            return  # a stream already closed: updates may still be in flight
        if increment == 0 or stream.send_window + increment > MAX_WINDOW:
            self.reset_stream(stream, ErrorCode.PROTOCOL_ERROR if increment == 0 else ErrorCode.FLOW_CONTROL_ERROR)
            return
        stream.send_window += increment
        self._flush(stream)

    def _remote_end(self, stream: Stream) -> None:
        stream.remote_closed = True
        self._release(stream)
        self.handler.on_request(self, stream)

    def _release(self, stream: Stream) -> None:
        """The stream's request body is no longer held by the connection (handed over, answered or dropped)."""
        if stream.held:
            self._held -= stream.held
            stream.held = 0
            self._credit()

    def _credit(self) -> None:
        """Give the client back the connection window it used, unless the bodies held are at the limit."""
        if self._unacked >= self.limits.connection_window // 2 and self._held <= self.limits.max_held:
            self._write(frame(Frame.WINDOW_UPDATE, 0, 0, self._unacked.to_bytes(4, "big")))
            self._unacked = 0

    # ---- frames out ---------------------------------------------------------------------------------------
    def send_headers(self, stream: Stream, block: bytes, *, end_stream: bool = False) -> None:
        """The response's headers; with ``end_stream``, the whole answer (a trailers-only gRPC response)."""
        if stream.reset or stream.local_closed:
            return
        self._write(self._header_frames(stream.id, block, end_stream))
        if end_stream:
            self._local_end(stream)

    def send_data(self, stream: Stream, data: bytes) -> None:
        """Body bytes, sent as the client's windows allow (the rest waits for its WINDOW_UPDATEs)."""
        if stream.reset or stream.local_closed:
            return
        stream.pending += data
        self._flush(stream)

    def send_trailers(self, stream: Stream, block: bytes) -> None:
        """The last header block, after every byte of body; it ends the stream."""
        if stream.reset or stream.local_closed:
            return
        stream.trailers = block
        self._flush(stream)

    def send_answer(self, stream: Stream, headers: bytes, data: bytes, trailers: bytes) -> None:
        """Headers, body and trailers in one write when the windows allow it (a unary answer, nearly always)."""
        if stream.reset or stream.local_closed:
            return
        size = len(data)
        if stream.pending or size > stream.send_window or size > self._send_window or size > self._peer_max_frame:
            self.send_headers(stream, headers)
            self.send_data(stream, data)
            self.send_trailers(stream, trailers)
            return
        stream.send_window -= size
        self._send_window -= size
        self._write(
            frame(Frame.HEADERS, Flag.END_HEADERS, stream.id, headers)
            + frame(Frame.DATA, 0, stream.id, data)
            + self._header_frames(stream.id, trailers, True)
        )
        self._local_end(stream)

    def reset_stream(self, stream: Stream, code: ErrorCode) -> None:
        self.streams.pop(stream.id, None)
        self._send_reset(stream, code)
        self._close_if_done()

    def shutdown(self) -> None:
        """GOAWAY: no new streams; the connection closes once the streams in flight are answered."""
        if self._transport is None:
            return
        self._closing = True
        self._send_goaway()
        self._close_if_done()

    def _send_goaway(self) -> None:
        """Our GOAWAY, once: the last stream we took, and no error."""
        if not self._goaway_sent:
            self._goaway_sent = True
            self._write(goaway_frame(self._last_stream, ErrorCode.NO_ERROR))

    def abort(self) -> None:
        """Close now; handlers still running are cancelled."""
        self._close()

    def _close(self) -> None:
        """Close the transport; nothing is written after it (a call answering late finds the connection gone)."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def _flush(self, stream: Stream) -> None:
        while stream.pending:
            size = min(len(stream.pending), stream.send_window, self._send_window, self._peer_max_frame)
            if size <= 0:
                return  # sent when a WINDOW_UPDATE (or a larger initial window) arrives
            chunk, stream.pending = stream.pending[:size], stream.pending[size:]
            stream.send_window -= size
            self._send_window -= size
            self._write(frame(Frame.DATA, 0, stream.id, chunk))
        if stream.trailers is not None:
            self._write(self._header_frames(stream.id, stream.trailers, True))
            self._local_end(stream)

    def _flush_all(self) -> None:
        for stream in list(self.streams.values()):
            if stream.pending or stream.trailers is not None:
                self._flush(stream)

    def _header_frames(self, stream_id: int, block: bytes, end_stream: bool) -> bytes:
        end = Flag.END_STREAM if end_stream else 0
        limit = self._peer_max_frame
        if len(block) <= limit:
            return frame(Frame.HEADERS, Flag.END_HEADERS | end, stream_id, block)
        parts = [block[i : i + limit] for i in range(0, len(block), limit)]
        frames = [frame(Frame.HEADERS, end, stream_id, parts[0])]
        frames += [frame(Frame.CONTINUATION, 0, stream_id, part) for part in parts[1:-1]]
        frames.append(frame(Frame.CONTINUATION, Flag.END_HEADERS, stream_id, parts[-1]))
        return b"".join(frames)

    def _local_end(self, stream: Stream) -> None:
        stream.local_closed = True
        stream.pending = b""
        stream.trailers = None
        self._release(stream)
        self.streams.pop(stream.id, None)
        if not stream.remote_closed:  # answered before the request ended: the client may stop sending (§8.1)
            self._write(rst_stream_frame(stream.id, ErrorCode.NO_ERROR))
        self._close_if_done()

    def _send_reset(self, stream: Stream, code: ErrorCode) -> None:
        self._abandon(stream)
        self._write(rst_stream_frame(stream.id, code))

    def _abandon(self, stream: Stream) -> None:
        stream.reset = True
        self._release(stream)
        if stream.timer is not None:
            stream.timer.cancel()
        if stream.task is not None and not stream.task.done():
            stream.task.cancel()

    def _close_if_done(self) -> None:
        if self._closing and not self.streams and self._transport is not None:
            self._send_goaway()  # the peer's GOAWAY is answered with ours before the close (RFC 9113 §6.8)
            self._flush_out()
            self._close()

    def _write(self, data: bytes) -> None:
        if self._out is not None:
            self._out.append(data)
        elif self._transport is not None:
            self._transport.write(data)

    def _flush_out(self) -> None:
        if self._out and self._transport is not None:
            self._transport.write(b"".join(self._out))
            self._out = []

    def _fail(self, error: ConnectionProtocolError) -> None:
        log.info("gRPC connection closed: %s", error.message)
        self._out = None
        if self._transport is not None:
            self._transport.write(goaway_frame(self._last_stream, error.code, error.message.encode()[:256]))
            self._close()

    def _not_http2(self) -> None:
        """Bytes that are not HTTP/2's preface: an HTTP/1.x request is answered 400 saying so, anything else closed."""
        self._out = None
        if self._transport is None:
            return
        if bytes(self._buffer).startswith(HTTP1_METHODS):
            text = b"this port speaks gRPC (HTTP/2 with prior knowledge); send REST requests to the HTTP port\n"
            self._transport.write(
                b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(text), text)
            )
        else:
            self._transport.write(goaway_frame(0, ErrorCode.PROTOCOL_ERROR))
        self._close()
