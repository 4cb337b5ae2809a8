"""HPACK (RFC 7541) both ways: the blocks clients send, decoded cheaply for what gRPC clients repeat; the server's.

A gRPC client sends seven or eight headers per call; once they are in its encoder's dynamic table, most calls'
blocks are a few one-byte references. The ``hpack`` package's decoder spent ~18 µs on such a block (logging
calls, tuple classes, a memoryview slice per field): a sixth of the event loop's work for a ``ModelInfer`` when
the client sends a new ``grpc-timeout`` each call, as grpc-go and grpc-java do with a deadline, so that no two
blocks are alike. This decoder keeps the table as text, decodes a field in a few byte operations and remembers
Huffman strings it has seen; whole blocks that leave the table as it was are remembered too (a client without a
deadline sends the same bytes every call). The Huffman code itself is ``hpack``'s (RFC 7541 Appendix B).

The server's own blocks are literals without indexing: nothing the peer's decoder has to keep.
"""

from __future__ import annotations

from collections import deque

import hpack.exceptions
import hpack.huffman_table
import hpack.table

DEFAULT_TABLE_SIZE = 4096  # SETTINGS_HEADER_TABLE_SIZE's default; the server never advertises another
ENTRY_OVERHEAD = 32  # RFC 7541 §4.1: an entry's size is its name's and value's octets plus 32
MAX_CONTINUATION_BYTES = 4  # an integer up to 2**28 + its prefix: any size or index a sane peer sends

# (name, value, entry size), as the dynamic table keeps them; the static table is ASCII, so octets are characters.
_STATIC: tuple[tuple[str, str, int], ...] = tuple(
    (n.decode(), v.decode(), len(n) + len(v) + ENTRY_OVERHEAD) for n, v in hpack.table.HeaderTable.STATIC_TABLE
)
_FIRST_DYNAMIC = len(_STATIC) + 1  # indices start at 1; 62 is the newest dynamic entry


class HeaderBlockError(ValueError):
    """The block is not valid HPACK for the table as it stands (a connection error: COMPRESSION_ERROR)."""


def _decode_integer(block: bytes, pos: int, prefix_bits: int) -> tuple[int, int]:
    """The integer at ``pos`` with a ``prefix_bits``-bit prefix (RFC 7541 §5.1), and where the next field starts."""
    mask = (1 << prefix_bits) - 1
    value = block[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    for _ in range(MAX_CONTINUATION_BYTES):
        if pos >= len(block):
            raise HeaderBlockError("an integer runs past the end of the block")
        byte = block[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos
    raise HeaderBlockError(f"an integer longer than {MAX_CONTINUATION_BYTES} continuation bytes")


def _encode_integer(value: int, prefix_bits: int, first: int = 0) -> bytes:
    """An HPACK integer (RFC 7541 §5.1) with ``first``'s high bits in its first byte."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_headers(headers: list[tuple[bytes, bytes]]) -> bytes:
    """A header block of literals without indexing (RFC 7541 §6.2.2): no state shared with the peer's decoder."""
    out = bytearray()
    for name, value in headers:
        out += b"\x00" + _encode_integer(len(name), 7) + name + _encode_integer(len(value), 7) + value
    return bytes(out)


class HeaderDecoder:
    """One connection's HPACK decoder: its dynamic table follows the peer's encoder block by block.

    Args:
        max_header_list_size: the largest decoded header list accepted (octets of names and values plus 32 each).
        max_table_size: the largest dynamic table the peer may ask for (our SETTINGS_HEADER_TABLE_SIZE).
    """

    CACHED_BLOCKS = 64
    CACHED_STRINGS = 256

    def __init__(self, max_header_list_size: int, max_table_size: int = DEFAULT_TABLE_SIZE) -> None:
        self.max_header_list_size = max_header_list_size
        self._allowed_size = max_table_size
        self._max_size = max_table_size
        self._size = 0
        self._dynamic: deque[tuple[str, str, int]] = deque()  # newest first: (name, value, entry size)
        self._generation = 0  # changes with every insertion, eviction or resize: what a remembered block is valid for
        self._blocks: dict[bytes, tuple[int, tuple[tuple[str, str], ...]]] = {}
        self._huffman: dict[bytes, str] = {}

    @property
    def table_size(self) -> int:
        """Octets the dynamic table holds, as RFC 7541 counts them."""
        return self._size

    def decode(self, block: bytes) -> tuple[tuple[str, str], ...]:
        """The block's headers, names and values as text, in order.

        Raises:
            HeaderBlockError: the block is not valid HPACK for the table as it stands, or is too large.
        """
        generation = self._generation
        seen = self._blocks.get(block)
        if seen is not None and seen[0] == generation:
            return seen[1]
        headers = self._decode(block)
        if self._generation == generation:
            if len(self._blocks) >= self.CACHED_BLOCKS:
                self._blocks.clear()
            self._blocks[block] = (generation, headers)
        return headers

    def _decode(self, block: bytes) -> tuple[tuple[str, str], ...]:
        headers: list[tuple[str, str]] = []
        listed = 0
        pos, end = 0, len(block)
        while pos < end:
            first = block[pos]
            if 0x80 < first < 0xFF:  # indexed field (§6.1) with a one-byte index: most of what gRPC clients send
                name, value, octets = self._entry(first & 0x7F)
                pos += 1
            elif first & 0x80:  # indexed field, index 0 (an error) or past the one-byte prefix
                index, pos = _decode_integer(block, pos, 7)
                name, value, octets = self._entry(index)
            elif first & 0x40:  # literal with incremental indexing (§6.2.1)
                index, pos = _decode_integer(block, pos, 6)
                name, value, octets, pos = self._literal(block, pos, index)
                self._insert(name, value, octets)
            elif first & 0x20:  # dynamic table size update (§6.3): only before the block's first field
                if headers:
                    raise HeaderBlockError("a dynamic table size update after a header field")
                size, pos = _decode_integer(block, pos, 5)
                self._resize(size)
                continue
            else:  # literal without indexing (§6.2.2) or never indexed (§6.2.3): the table is untouched
                index, pos = _decode_integer(block, pos, 4)
                name, value, octets, pos = self._literal(block, pos, index)
            listed += octets
            if listed > self.max_header_list_size:
                raise HeaderBlockError(f"a header list larger than {self.max_header_list_size} octets")
            headers.append((name, value))
        return tuple(headers)

    def _entry(self, index: int) -> tuple[str, str, int]:
        """The static or dynamic table's entry ``index`` (1-based, §2.3.3)."""
        if 0 < index < _FIRST_DYNAMIC:
            return _STATIC[index - 1]
        if _FIRST_DYNAMIC <= index < _FIRST_DYNAMIC + len(self._dynamic):
            return self._dynamic[index - _FIRST_DYNAMIC]
        raise HeaderBlockError(f"index {index} is in neither table (dynamic table: {len(self._dynamic)} entries)")

    def _literal(self, block: bytes, pos: int, name_index: int) -> tuple[str, str, int, int]:
        """A literal field's name (indexed or a string), its value, its entry size, and where the next starts."""
        if name_index:
            name = self._entry(name_index)[0]
            name_octets = len(name.encode())
        else:
            name, name_octets, pos = self._string(block, pos)
        value, value_octets, pos = self._string(block, pos)
        return name, value, name_octets + value_octets + ENTRY_OVERHEAD, pos

    def _string(self, block: bytes, pos: int) -> tuple[str, int, int]:
        """A string literal (§5.2): its text, its decoded octets, and where the next field starts."""
        if pos >= len(block):
            raise HeaderBlockError("a string literal missing at the end of the block")
        huffman = block[pos] & 0x80
        length, pos = _decode_integer(block, pos, 7)
        end = pos + length
        if end > len(block):
            raise HeaderBlockError(f"a string of {length} octets runs past the end of the block")
        raw = block[pos:end]
        if not huffman:
            return self._text(raw), length, end
        text = self._huffman.get(raw)
        if text is None:
            try:
                text = self._text(hpack.huffman_table.decode_huffman(raw))
            except hpack.exceptions.HPACKDecodingError as e:  # EOS inside, or padding not a short run of ones
                raise HeaderBlockError(f"a Huffman string that does not decode: {e}") from e
            if len(self._huffman) >= self.CACHED_STRINGS:
                self._huffman.clear()
            self._huffman[raw] = text
        return text, len(text.encode()), end

    @staticmethod
    def _text(raw: bytes) -> str:
        try:
            return raw.decode()
        except UnicodeDecodeError as e:
            raise HeaderBlockError("a header that is not UTF-8") from e

    def _insert(self, name: str, value: str, octets: int) -> None:
        """Add an entry as the newest, evicting the oldest to make room; one larger than the table empties it (§4.4)."""
        self._generation += 1
        if octets > self._max_size:
            self._dynamic.clear()
            self._size = 0
            return
        self._evict_to(self._max_size - octets)
        self._dynamic.appendleft((name, value, octets))
        self._size += octets

    def _resize(self, size: int) -> None:
        if size > self._allowed_size:
            raise HeaderBlockError(f"a dynamic table of {size} octets asked for; at most {self._allowed_size}")
        self._generation += 1
        self._max_size = size
        self._evict_to(size)

    def _evict_to(self, size: int) -> None:
        while self._size > size:
            self._size -= self._dynamic.pop()[2]
