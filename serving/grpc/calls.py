"""gRPC over HTTP/2 (the gRPC project's PROTOCOL-HTTP2): requests to method handlers, answers to frames.

A request is ``POST /<service>/<method>`` with ``content-type: application/grpc``; its body is one message
(1 byte compressed flag, 4 bytes length, the protobuf bytes). Metadata is every other header (``-bin`` keys
base64); ``grpc-timeout`` sets the deadline; ``grpc-encoding`` (identity, gzip, deflate) says how a compressed
message was compressed. The answer is headers, the response message(s), and trailers carrying ``grpc-status``,
a percent-encoded ``grpc-message`` and the error's metadata; an error before any message is one header block
(trailers-only). A method that is not served is UNIMPLEMENTED; bad framing is INVALID_ARGUMENT naming it.

Handlers see a :class:`Call`, the subset of ``grpc.aio.ServicerContext`` the services use (metadata, time
remaining, abort), so ``serving/grpc/service.py`` reads as a grpcio servicer would.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, NoReturn

from modelpress.serving.errors import BadRequestError
from modelpress.serving.grpc.header_block import encode_headers
from modelpress.serving.grpc.http2 import Http2Connection, Stream
from modelpress.serving.grpc.status import StatusCode

log = logging.getLogger("serving")

Metadata = tuple[tuple[str, str | bytes], ...]
ENCODINGS = ("identity", "gzip", "deflate")
_ACCEPT = (b"grpc-accept-encoding", ",".join(ENCODINGS).encode())
_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc"), _ACCEPT]
RESPONSE_HEADERS = encode_headers(_HEADERS)
OK_TRAILERS = encode_headers([(b"grpc-status", b"0")])
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
# Request headers that are HTTP/2 or gRPC's own, not the caller's metadata (as grpcio leaves them out).
_RESERVED = frozenset(("te", "content-type", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding"))


class CallAbortedError(Exception):
    """Ends a call with a status other than OK (``Call.abort``)."""

    def __init__(self, code: StatusCode, message: str, metadata: Metadata = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.metadata = metadata


class Call:
    """One call as its handler sees it: the caller's metadata and deadline, and :meth:`abort`."""

    __slots__ = ("_headers", "_metadata", "deadline")

    def __init__(self, headers: Iterable[tuple[str, str]], deadline: float | None) -> None:
        self._headers = headers
        self._metadata: Metadata | None = None
        self.deadline = deadline  # on the event loop's clock

    def invocation_metadata(self) -> Metadata:
        """The caller's metadata (read from the request's headers when first asked).

        Raises:
            BadRequestError: a ``-bin`` value is not base64.
        """
        if self._metadata is None:
            self._metadata = metadata_of(self._headers)
        return self._metadata

    def time_remaining(self) -> float | None:
        """Seconds until the caller's deadline (``grpc-timeout``), None without one."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - asyncio.get_running_loop().time())

    async def abort(self, code: StatusCode, details: str = "", trailing_metadata: Metadata = ()) -> NoReturn:
        raise CallAbortedError(code, details, trailing_metadata)


Unary = Callable[[bytes, Call], Awaitable[Any]]
ServerStreaming = Callable[[bytes, Call], AsyncIterator[Any]]


@dataclass(frozen=True)
class Method:
    """A served method: its handler takes the request's bytes and returns (or, streaming, yields) messages."""

    handler: Unary | ServerStreaming
    serialize: Callable[[Any], bytes]
    streaming: bool = False


def status_block(code: StatusCode, message: str, metadata: Metadata = (), *, headers: bool = False) -> bytes:
    """Trailers carrying a status; with ``headers``, a trailers-only answer (the response headers too)."""
    fields = list(_HEADERS) if headers else []
    fields.append((b"grpc-status", str(int(code)).encode()))
    if message:
        fields.append((b"grpc-message", percent_encode(message)))
    for key, value in metadata:
        fields.append((key.encode(), _metadata_value(key, value)))
    return encode_headers(fields)


def percent_encode(message: str) -> bytes:
    """``grpc-message``'s encoding: UTF-8, with bytes outside printable ASCII and ``%`` as ``%XX``."""
    out = bytearray()
    for byte in message.encode("utf-8"):
        if 0x20 <= byte <= 0x7E and byte != 0x25:
            out.append(byte)
        else:
            out += b"%%%02X" % byte
    return bytes(out)


def _metadata_value(key: str, value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).rstrip(b"=") if key.endswith("-bin") else raw


def message_frame(message: bytes) -> bytes:
    return b"\0" + len(message).to_bytes(4, "big") + message


def parse_timeout(value: str) -> float:
    """``grpc-timeout`` in seconds: 1 to 8 digits and a unit (H, M, S, m, u, n).

    Raises:
        CallAbortedError: INVALID_ARGUMENT, naming the value.
    """
    digits, unit = value[:-1], value[-1:]
    if not (digits.isdigit() and len(digits) <= 8 and unit in _TIMEOUT_UNITS):
        message = f"grpc-timeout {value[:20]!r} is not 1-8 digits and a unit"
        raise CallAbortedError(StatusCode.INVALID_ARGUMENT, message)
    return int(digits) * _TIMEOUT_UNITS[unit]


def read_message(body: bytes | bytearray, encoding: str | None, limit: int) -> bytes:
    """The one message of a unary request's body, decompressed.

    Raises:
        CallAbortedError: INVALID_ARGUMENT for a body that is not exactly one framed message (or does not
            decompress), INTERNAL for a compressed flag without an encoding, UNIMPLEMENTED for an unknown encoding,
            RESOURCE_EXHAUSTED for a message over ``limit`` bytes.
    """
    bad = StatusCode.INVALID_ARGUMENT
    if len(body) < 5:
        raise CallAbortedError(bad, f"a unary call carries one length-prefixed message; the body has {len(body)} bytes")
    compressed, length = body[0], int.from_bytes(body[1:5], "big")
    if len(body) - 5 != length:
        carried = len(body) - 5
        raise CallAbortedError(bad, f"the message's length prefix says {length} bytes, the body carries {carried}")
    message = bytes(body[5:])
    if not compressed:
        return message
    if encoding in (None, "identity"):  # INTERNAL, as gRPC's compression.md asks (its test case 6)
        message = "the message is flagged compressed but grpc-encoding names no compression"
        raise CallAbortedError(StatusCode.INTERNAL, message)
    if encoding not in ENCODINGS:
        raise CallAbortedError(
            StatusCode.UNIMPLEMENTED,
            f"grpc-encoding {encoding[:40]!r} is not supported: {', '.join(ENCODINGS)}",
            ((_ACCEPT[0].decode(), _ACCEPT[1].decode()),),
        )
    inflater = zlib.decompressobj(31 if encoding == "gzip" else 15)
    try:
        plain = inflater.decompress(message, limit + 1)
    except zlib.error as e:
        raise CallAbortedError(bad, f"the message does not decompress as {encoding}: {e}") from e
    if len(plain) > limit:
        raise CallAbortedError(StatusCode.RESOURCE_EXHAUSTED, f"decompressed message larger than {limit} bytes")
    return plain


def metadata_of(headers: Iterable[tuple[str, str]]) -> Metadata:
    """The caller's metadata: every header but pseudo-headers and gRPC's own; ``-bin`` values decoded to bytes.

    Raises:
        BadRequestError: a ``-bin`` value is not base64 (INVALID_ARGUMENT, as every handler answers it).
    """
    out: list[tuple[str, str | bytes]] = []
    for key, value in headers:
        if key.startswith(":") or key in _RESERVED:
            continue
        if key.endswith("-bin"):
            try:
                out.append((key, base64.b64decode(value + "=" * (-len(value) % 4), validate=True)))
            except binascii.Error as e:
                raise BadRequestError(f"metadata {key[:80]!r} is not base64") from e
        else:
            out.append((key, value))
    return tuple(out)


class GrpcHandler:
    """Answers each complete HTTP/2 request by running its method's handler as a task on the loop.

    Args:
        methods: by path, ``/<package.Service>/<Method>``.
        max_message: largest request message in bytes (as grpcio's ``grpc.max_receive_message_length``).
    """

    def __init__(self, methods: dict[str, Method], max_message: int) -> None:
        self.methods = methods
        self.max_message = max_message
        self.tasks: set[asyncio.Task] = set()

    def on_request(self, connection: Http2Connection, stream: Stream) -> None:
        http_method = path = content_type = timeout = encoding = None
        for key, value in stream.headers:
            if key == ":method":
                http_method = value
            elif key == ":path":
                path = value
            elif key == "content-type":
                content_type = value
            elif key == "grpc-timeout":
                timeout = value
            elif key == "grpc-encoding":
                encoding = value
        if http_method != "POST":
            block = encode_headers([(b":status", b"405"), (b"allow", b"POST")])
            connection.send_headers(stream, block, end_stream=True)
            return
        if content_type is None or not content_type.startswith("application/grpc"):
            connection.send_headers(stream, encode_headers([(b":status", b"415")]), end_stream=True)
            return
        method = self.methods.get(path or "")
        loop = asyncio.get_running_loop()
        try:
            if method is None:
                raise CallAbortedError(StatusCode.UNIMPLEMENTED, f"method {str(path)[:200]!r} is not served here")
            deadline = None
            if timeout is not None:
                deadline = loop.time() + parse_timeout(timeout)
            message = read_message(stream.body, encoding, self.max_message)
            call = Call(stream.headers, deadline)
        except CallAbortedError as e:
            connection.send_headers(stream, status_block(e.code, e.message, e.metadata, headers=True), end_stream=True)
            return
        stream.body = bytearray()
        task = loop.create_task(self._run(connection, stream, method, message, call))
        stream.task = task
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        if deadline is not None:
            stream.timer = loop.call_at(deadline, self._expire, stream)

    def on_oversized(self, connection: Http2Connection, stream: Stream) -> None:
        message = f"received message larger than max ({len(stream.body) - 5} vs. {self.max_message})"
        block = status_block(StatusCode.RESOURCE_EXHAUSTED, message, headers=True)
        connection.send_headers(stream, block, end_stream=True)

    @staticmethod
    def _expire(stream: Stream) -> None:
        stream.expired = True
        if stream.task is not None:
            stream.task.cancel()

    async def _run(
        self, connection: Http2Connection, stream: Stream, method: Method, message: bytes, call: Call
    ) -> None:
        started = False
        try:
            if method.streaming:
                async for response in method.handler(message, call):  # type: ignore[union-attr]
                    if not started:
                        connection.send_headers(stream, RESPONSE_HEADERS)
                        started = True
                    connection.send_data(stream, message_frame(method.serialize(response)))
                ok = OK_TRAILERS if started else status_block(StatusCode.OK, "", headers=True)
                self._end(connection, stream, started, ok)
            else:
                response = await method.handler(message, call)  # type: ignore[misc]
                body = message_frame(method.serialize(response))
                connection.send_answer(stream, RESPONSE_HEADERS, body, OK_TRAILERS)
        except CallAbortedError as e:
            self._end(connection, stream, started, status_block(e.code, e.message, e.metadata, headers=not started))
        except asyncio.CancelledError:
            if stream.expired:  # the caller's deadline passed (else the caller went away: no one to answer)
                block = status_block(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", headers=not started)
                self._end(connection, stream, started, block)
        except Exception as e:  # a bug: logged with its traceback, INTERNAL naming only the exception's type
            log.exception("unexpected error in a gRPC call", exc_info=e)
            block = status_block(StatusCode.INTERNAL, f"internal error: {type(e).__name__}", headers=not started)
            self._end(connection, stream, started, block)
        finally:
            if stream.timer is not None:
                stream.timer.cancel()

    @staticmethod
    def _end(connection: Http2Connection, stream: Stream, started: bool, block: bytes) -> None:
        if started:
            connection.send_trailers(stream, block)
        else:
            connection.send_headers(stream, block, end_stream=True)
