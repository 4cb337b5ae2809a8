"""How the CLI reports bad input: one line on stderr naming the problem, exit code 2, no traceback."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import NoReturn

import typer

from modelpress.common.errors import UserError

USAGE_EXIT_CODE = 2


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and exit with code 2."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(USAGE_EXIT_CODE)


@contextlib.contextmanager
def user_errors(*kinds: type[BaseException]) -> Iterator[None]:
    """Turn bad input into :func:`fail`: every stage's :class:`~modelpress.common.errors.UserError`, plus ``kinds``.

    Anything else is a bug and keeps its traceback.
    """
    try:
        yield
    except (UserError, *kinds) as e:
        fail(str(e))
