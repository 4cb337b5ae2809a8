"""The first problem of a pydantic ``ValidationError``, for one-line error messages."""

from __future__ import annotations

from typing import NamedTuple

from pydantic import ValidationError

# pydantic's prefix on the message of a ValueError raised inside a validator.
_VALUE_ERROR = "Value error, "


class FirstError(NamedTuple):
    """Where and what the first error of a ``ValidationError`` is.

    Attributes:
        where: the dotted location (``export.int8.mode``); empty for an error of the whole object.
        message: pydantic's message, as it gives it.
        kind: pydantic's error type (``extra_forbidden``, ``missing``, ``value_error``, ...).
    """

    where: str
    message: str
    kind: str

    @property
    def plain(self) -> str:
        """The message without the ``Value error, `` prefix pydantic puts before a validator's own text."""
        return self.message.removeprefix(_VALUE_ERROR)


def first_error(error: ValidationError) -> FirstError:
    """The first of ``error.errors()``: pydantic lists every problem; a one-line message names the first."""
    first = error.errors()[0]
    return FirstError(".".join(str(part) for part in first["loc"]), first["msg"], first["type"])
