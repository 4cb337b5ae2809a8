"""The CLI as the tests call it in-process, and the one-line error every bad input must give."""

from __future__ import annotations

from typer.testing import CliRunner

from modelpress.cli import build_app


def cli(*args: str) -> tuple[str, str, int]:
    """Run ``modelpress ARGS`` in this process: its stdout, stderr and exit code."""
    result = CliRunner().invoke(build_app(), list(args))
    return result.stdout, result.stderr, result.exit_code


def one_error_line(stderr: str) -> str:
    """The single ``error: ...`` line of a refused command (anything more on stderr fails the test)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]
