"""HPACK both ways (serving/grpc/header_block.py): decoding checked against the ``hpack`` package's decoder, block
by block on one connection's table, plus every way a block can be wrong and the remembered-block rule."""

from __future__ import annotations

import random

import hpack
import pytest

from modelpress.serving.grpc.header_block import HeaderBlockError, HeaderDecoder, encode_headers

GRPC_GO_HEADERS = [
    (":method", "POST"),
    (":scheme", "http"),
    (":path", "/inference.GRPCInferenceService/ModelInfer"),
    (":authority", "127.0.0.1:8001"),
    ("content-type", "application/grpc"),
    ("user-agent", "grpc-go/1.33.3"),
    ("te", "trailers"),
]


def _random_headers(rng: random.Random) -> list:
    names = ["x-a", "x-b", "grpc-timeout", "authorization", "traceparent", "x-" + "n" * rng.randint(1, 200), "é-x"]
    headers: list = []
    for _ in range(rng.randint(0, 12)):
        if rng.random() < 0.3:
            headers.append(rng.choice(GRPC_GO_HEADERS))
            continue
        value = "".join(rng.choice("0123456789abcdefxyz-_/é ") for _ in range(rng.choice([0, 1, 5, 20, 140, 3000])))
        header = (rng.choice(names), value)
        headers.append(hpack.NeverIndexedHeaderTuple(*header) if rng.random() < 0.1 else header)
    return headers


@pytest.mark.parametrize("seed", range(4))
def test_blocks_decode_as_hpack_decodes_them_on_one_connection(seed):
    """Huffman or not, indexed or literal, never-indexed, entries larger than the table, size updates, indices and
    lengths past a one-byte prefix: the same headers as hpack's decoder, and the same table size, block by block."""
    rng = random.Random(seed)
    encoder = hpack.Encoder()
    reference = hpack.Decoder(max_header_list_size=1 << 20)
    ours = HeaderDecoder(1 << 20)
    for _ in range(400):
        if rng.random() < 0.05:
            encoder.header_table_size = rng.choice([0, 100, 1000, 4096])  # the next block starts with an update
        block = encoder.encode(_random_headers(rng), huffman=rng.random() < 0.7)
        assert ours.decode(block) == tuple(reference.decode(block))
        assert ours.table_size == reference.header_table._current_size  # hpack keeps it private


def test_a_grpc_go_client_with_a_new_deadline_each_call():
    """The case the decoder is built for: seven repeated headers and a grpc-timeout that changes every call."""
    encoder = hpack.Encoder()
    ours = HeaderDecoder(1 << 16)
    for i in range(500):  # enough insertions to evict the first entries and have the encoder write them again
        headers = [*GRPC_GO_HEADERS, ("grpc-timeout", f"{9_999_000 - i * 37}u")]
        assert ours.decode(encoder.encode(headers)) == tuple(headers)


@pytest.mark.parametrize(
    ("block", "names"),
    [
        (b"\x80", "index 0"),
        (b"\xbe", "index 62"),  # the dynamic table is empty
        (b"\x3f\xe2\x1f", "4097 octets"),  # a size update past the 4096 allowed
        (b"\x82\x3f\xe1\x1f", "after a header field"),
        (b"\xff\xff\xff\xff\xff\x01", "continuation bytes"),
        (b"\xff\xff", "past the end"),
        (b"\x40\x05ab", "past the end"),
        (b"\x40", "missing"),
        (b"\x40\x81\xff", "Huffman"),  # a string of ones: EOS inside or padding too long
        (b"\x40\x02\xff\xfe\x00", "UTF-8"),
    ],
)
def test_wrong_blocks_are_refused_naming_the_fault(block, names):
    with pytest.raises(HeaderBlockError, match=names):
        HeaderDecoder(1 << 16).decode(block)


def test_a_header_list_past_the_limit_is_refused():
    block = encode_headers([(b"x-big", b"v" * 200)])
    assert HeaderDecoder(300).decode(block) == (("x-big", "v" * 200),)
    with pytest.raises(HeaderBlockError, match="larger than 200"):
        HeaderDecoder(200).decode(block)


def test_mutated_blocks_raise_only_header_block_errors_or_decode_as_hpack_does():
    """Random bytes changed, cut or added in real blocks: never another exception; what decodes, decodes alike."""
    rng = random.Random(7)
    encoder = hpack.Encoder()
    blocks = [encoder.encode([*GRPC_GO_HEADERS, ("grpc-timeout", f"{i}m")]) for i in range(50)]
    agreed = 0
    for _ in range(3000):
        block = bytearray(rng.choice(blocks[1:]))
        for _ in range(rng.randint(1, 3)):
            where = rng.randrange(len(block) + 1)
            choice = rng.random()
            if choice < 0.5 and where < len(block):
                block[where] = rng.randrange(256)
            elif choice < 0.75:
                del block[where:]
            else:
                block[where:where] = bytes([rng.randrange(256)])
        # Both decoders start from the same table: the one the first block leaves.
        ours, reference = HeaderDecoder(1 << 16), hpack.Decoder()
        ours.decode(blocks[0])
        reference.decode(blocks[0])
        try:
            decoded = ours.decode(bytes(block))
        except HeaderBlockError:
            continue
        try:
            expected = tuple(reference.decode(bytes(block)))
        except hpack.HPACKError:
            pytest.fail(f"{bytes(block)!r} decoded here to {decoded} but hpack refuses it")
        assert decoded == expected
        agreed += 1
    assert agreed > 100  # the mutations left enough blocks valid to compare


def test_repeated_blocks_are_decoded_once_and_never_against_a_changed_table(monkeypatch):
    """A block's headers are reused only while the dynamic table is as it was when they were decoded."""
    encoder = hpack.Encoder()
    decoder = HeaderDecoder(1 << 16)
    first = encoder.encode([("x-a", "1")])  # inserts x-a into the table
    repeat = encoder.encode([("x-a", "1")])  # now one indexed field: the same bytes every call
    assert decoder.decode(first) == (("x-a", "1"),)
    assert decoder.decode(repeat) == (("x-a", "1"),)
    calls = []
    real = HeaderDecoder._decode
    monkeypatch.setattr(HeaderDecoder, "_decode", lambda self, block: calls.append(block) or real(self, block))
    assert decoder.decode(repeat) == (("x-a", "1"),)
    assert calls == []  # remembered
    assert decoder.decode(encoder.encode([("x-b", "2")])) == (("x-b", "2"),)  # inserts: x-b takes x-a's index
    assert decoder.decode(repeat) == (("x-b", "2"),)  # the same bytes now name x-b: decoded afresh
    assert calls[-1] == repeat


def test_a_table_emptied_and_resized_back_forgets_the_remembered_blocks():
    """Resizing to 0 and back leaves the size and the insertion count as they were, but the entries are gone."""
    encoder = hpack.Encoder()
    decoder = HeaderDecoder(1 << 16)
    decoder.decode(encoder.encode([("x-a", "1")]))
    repeat = encoder.encode([("x-a", "1")])
    assert decoder.decode(repeat) == (("x-a", "1"),)
    assert decoder.decode(b"\x20\x3f\xe1\x1f") == ()  # size 0, then 4096: the table is empty
    with pytest.raises(HeaderBlockError, match="index 62"):
        decoder.decode(repeat)


def test_the_servers_blocks_are_literals_hpack_reads_without_a_table():
    block = encode_headers([(b":status", b"200"), (b"content-type", b"application/grpc"), (b"x-" + b"n" * 300, b"v")])
    decoder = hpack.Decoder()
    assert decoder.decode(block) == [(":status", "200"), ("content-type", "application/grpc"), ("x-" + "n" * 300, "v")]
    assert not decoder.header_table.dynamic_entries
