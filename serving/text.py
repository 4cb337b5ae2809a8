"""Tokenisation for text models, with the ``tokenizers`` library and the ``tokenizer.json`` of the version folder.

A text model's manifest names a tokenizer file and a maximum length; the served input is a BYTES tensor of
texts and the ONNX graph takes ``input_ids`` / ``attention_mask`` (and ``token_type_ids`` when it has them).
Texts longer than the maximum are truncated, and which ones were is reported back to the client.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelpress.serving.errors import BadRequestError, ModelLoadError
from modelpress.serving.shared import SharedByKey


class TextInputError(BadRequestError):
    """A text input the tokenizer cannot take: empty, not UTF-8, or not a string."""


@dataclass(frozen=True)
class EncodedTexts:
    """Token tensors for one batch of texts, padded to the longest text (int64, ``[batch, seq]``).

    ``lengths`` are token counts before truncation (special tokens included); ``truncated[i]`` says whether
    text ``i`` lost tokens to the maximum length.
    """

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray
    lengths: list[int]
    truncated: list[bool]

    def feeds(self, graph_inputs: Sequence[str]) -> dict[str, np.ndarray]:
        """The tensors the ONNX graph asks for, by name."""
        tensors = {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "token_type_ids": self.token_type_ids,
        }
        unknown = [name for name in graph_inputs if name not in tensors]
        if unknown:
            raise ModelLoadError(f"text model graph input(s) {unknown} are not tokenizer outputs ({list(tensors)})")
        return {name: tensors[name] for name in graph_inputs}


def decode_text(value: object, index: int) -> str:
    """One element of a BYTES tensor as a non-empty ``str``; bytes must be UTF-8.

    Raises:
        TextInputError: naming the element and what is wrong with it.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as e:
            raise TextInputError(f"text {index}: not valid UTF-8 ({e.reason} at byte {e.start})") from e
    if not isinstance(value, str):
        raise TextInputError(f"text {index}: expected a string, got {type(value).__name__}")
    if not value.strip():
        raise TextInputError(f"text {index}: empty text (nothing to embed)")
    return value


class TextTokenizer:
    """Turns texts into padded token tensors with a ``tokenizer.json``.

    The file's own truncation and padding settings are replaced: truncation happens here at ``max_length``
    (so it can be reported per text) and each batch is padded only to its longest text.
    """

    def __init__(self, path: Path, max_length: int) -> None:
        from tokenizers import Tokenizer

        if max_length < 2:
            raise ModelLoadError(f"tokenizer max_length must be at least 2, got {max_length}")
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises a plain Exception for a missing or malformed file
            raise ModelLoadError(f"{path}: cannot load tokenizer: {e}") from e
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self.max_length = max_length
        self.pad_id = _pad_id(tokenizer)

    def encode(self, texts: Sequence[object]) -> EncodedTexts:
        """Tokenise a batch of texts (``str`` or UTF-8 ``bytes``).

        Raises:
            TextInputError: on an empty batch or any empty / non-UTF-8 / non-string element.
        """
        if len(texts) == 0:
            raise TextInputError("no texts given (expected at least one)")
        strings = [decode_text(value, i) for i, value in enumerate(texts)]
        encodings = self._tokenizer.encode_batch(strings)
        lengths = [len(e.ids) for e in encodings]
        seq = min(max(lengths), self.max_length)
        n = len(encodings)
        ids = np.full((n, seq), self.pad_id, dtype=np.int64)
        mask = np.zeros((n, seq), dtype=np.int64)
        types = np.zeros((n, seq), dtype=np.int64)
        for row, enc in enumerate(encodings):
            token_ids, type_ids = enc.ids, enc.type_ids
            if len(token_ids) > self.max_length:
                token_ids, type_ids = _truncate(token_ids, type_ids, enc.special_tokens_mask, self.max_length)
            k = len(token_ids)
            ids[row, :k] = token_ids
            mask[row, :k] = 1
            types[row, :k] = type_ids
        return EncodedTexts(ids, mask, types, lengths, [length > self.max_length for length in lengths])


_tokenizers: SharedByKey[TextTokenizer] = SharedByKey()


def shared_tokenizer(path: Path, max_length: int) -> TextTokenizer:
    """The process's one tokenizer for this file's content and maximum length (alive while a model holds it).

    Each loaded ``tokenizers`` vocabulary takes about 6 MiB; every variant of a text model carries the same
    ``tokenizer.json``. A tokenizer is safe to share: ``encode`` changes nothing in it (truncation and padding
    are set once, here), and the library encodes concurrently from several threads.

    Raises:
        ModelLoadError: the file is missing or not a tokenizer, or ``max_length`` is below 2.
    """
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as e:
        raise ModelLoadError(f"{path}: cannot load tokenizer: {e}") from e
    return _tokenizers.get((digest, max_length), lambda: TextTokenizer(path, max_length))


def _truncate(ids: list[int], types: list[int], special: list[int], limit: int) -> tuple[list[int], list[int]]:
    """Cut to ``limit`` tokens, keeping a closing special token ([SEP]) as the model saw in training."""
    if special and special[-1]:
        return [*ids[: limit - 1], ids[-1]], [*types[: limit - 1], types[-1]]
    return ids[:limit], types[:limit]


def _pad_id(tokenizer) -> int:
    for token in ("[PAD]", "<pad>", "<PAD>"):
        token_id = tokenizer.token_to_id(token)
        if token_id is not None:
            return int(token_id)
    return 0
