"""gRPC's framing over HTTP/2, piece by piece: deadlines, messages, compression, metadata, status trailers."""

from __future__ import annotations

import asyncio
import gzip
import zlib

import hpack
import pytest

from modelpress.serving.errors import BadRequestError
from modelpress.serving.grpc.calls import (
    Call,
    CallAbortedError,
    message_frame,
    metadata_of,
    parse_timeout,
    percent_encode,
    read_message,
    status_block,
)
from modelpress.serving.grpc.status import StatusCode


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("5S", 5.0), ("50m", 0.05), ("2M", 120.0), ("1H", 3600.0), ("7u", 7e-6), ("99999999n", 0.099999999)],
)
def test_grpc_timeout_in_every_unit(value, seconds):
    assert parse_timeout(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "S", "5", "5s", "-5S", "123456789S", "1.5S"])
def test_a_malformed_grpc_timeout_is_invalid_argument_naming_it(value):
    with pytest.raises(CallAbortedError) as raised:
        parse_timeout(value)
    assert raised.value.code is StatusCode.INVALID_ARGUMENT
    assert repr(value) in raised.value.message


def test_one_framed_message_is_read_back():
    assert read_message(message_frame(b"hello"), None, 100) == b"hello"
    assert read_message(message_frame(b""), "identity", 100) == b""


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "the body has 0 bytes"),
        (b"\0\0\0", "the body has 3 bytes"),
        (b"\0\0\0\0\x09abc", "says 9 bytes, the body carries 3"),
        (message_frame(b"a") + message_frame(b"b"), "says 1 bytes, the body carries 7"),
    ],
)
def test_a_body_that_is_not_one_message_is_invalid_argument(body, words):
    with pytest.raises(CallAbortedError) as raised:
        read_message(body, None, 100)
    assert raised.value.code is StatusCode.INVALID_ARGUMENT
    assert words in raised.value.message


def test_gzip_and_deflate_messages_are_decompressed():
    plain = b"tensor bytes " * 50
    for encoding, packed in (("gzip", gzip.compress(plain)), ("deflate", zlib.compress(plain))):
        body = b"\1" + len(packed).to_bytes(4, "big") + packed
        assert read_message(body, encoding, 10_000) == plain


def test_compression_refusals_name_the_problem():
    packed = gzip.compress(b"x" * 1000)
    body = b"\1" + len(packed).to_bytes(4, "big") + packed
    with pytest.raises(CallAbortedError) as unknown:
        read_message(body, "snappy", 10_000)
    assert unknown.value.code is StatusCode.UNIMPLEMENTED
    assert "'snappy'" in unknown.value.message
    assert dict(unknown.value.metadata)["grpc-accept-encoding"] == "identity,gzip,deflate"
    with pytest.raises(CallAbortedError) as unnamed:
        read_message(body, None, 10_000)
    assert unnamed.value.code is StatusCode.INTERNAL  # gRPC's compression.md, test case 6
    with pytest.raises(CallAbortedError) as bomb:  # inflated past the limit: refused without inflating it all
        read_message(body, "gzip", 100)
    assert bomb.value.code is StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(CallAbortedError) as corrupt:
        read_message(b"\1\0\0\0\3abc", "gzip", 100)
    assert corrupt.value.code is StatusCode.INVALID_ARGUMENT
    assert "does not decompress as gzip" in corrupt.value.message


def test_metadata_leaves_out_protocol_headers_and_decodes_binary_values():
    headers = (
        (":method", "POST"),
        (":path", "/inference.GRPCInferenceService/ModelInfer"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("grpc-timeout", "5S"),
        ("authorization", "Bearer t"),
        ("trace-bin", "AAEC"),  # unpadded base64, as the spec asks senders to emit
        ("x-padded-bin", "AAE="),
        ("user-agent", "grpc-python/1.x"),
    )
    assert metadata_of(headers) == (
        ("authorization", "Bearer t"),
        ("trace-bin", b"\0\1\2"),
        ("x-padded-bin", b"\0\1"),
        ("user-agent", "grpc-python/1.x"),
    )
    with pytest.raises(BadRequestError, match="'x-bin' is not base64"):
        metadata_of((("x-bin", "not base64!"),))


def test_grpc_message_is_percent_encoded_utf8():
    assert percent_encode("model 'digits': 100% full") == b"model 'digits': 100%25 full"
    assert percent_encode("modèle\n") == b"mod%C3%A8le%0A"


def test_status_trailers_decode_to_the_status_message_and_metadata():
    block = status_block(
        StatusCode.UNAVAILABLE, "queue full: 100%", (("retry-after", "2"), ("grpc-status-details-bin", b"\0\1"))
    )
    assert hpack.Decoder().decode(block) == [
        ("grpc-status", "14"),
        ("grpc-message", "queue full: 100%25"),
        ("retry-after", "2"),
        ("grpc-status-details-bin", "AAE"),
    ]
    only = hpack.Decoder().decode(status_block(StatusCode.NOT_FOUND, "no model 'x'" + "y" * 200, headers=True))
    assert only[:3] == [
        (":status", "200"),
        ("content-type", "application/grpc"),
        ("grpc-accept-encoding", "identity,gzip,deflate"),
    ]
    assert only[3] == ("grpc-status", "5")
    assert only[4][1].endswith("y" * 200)  # a value past 127 bytes: HPACK's multi-byte length


def test_time_remaining_counts_down_to_zero_and_is_none_without_a_deadline():
    async def check() -> None:
        now = asyncio.get_running_loop().time()
        assert Call((), None).time_remaining() is None
        assert 9.0 < Call((), now + 10).time_remaining() <= 10.0
        assert Call((), now - 1).time_remaining() == 0.0

    asyncio.run(check())


def test_abort_raises_the_status_for_the_server_to_send():
    with pytest.raises(CallAbortedError) as raised:
        asyncio.run(Call((), None).abort(StatusCode.PERMISSION_DENIED, "no", (("a", "b"),)))
    assert (raised.value.code, raised.value.message, raised.value.metadata) == (
        StatusCode.PERMISSION_DENIED,
        "no",
        (("a", "b"),),
    )
