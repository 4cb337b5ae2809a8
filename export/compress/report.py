"""How a search result is shown: a rich table (every candidate, with its status and reason) and JSON."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table
from rich.text import Text

from modelpress.export.compress.search import Candidate, SearchResult

COLUMNS = ("candidate", "status", "params", "nonzero", "ONNX bytes", "gzip bytes", "× smaller", "accuracy",
           "drop (pts)", "p50 b=1", "× eager", "marks")  # fmt: skip


def _num(value: float | int | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _marks(c: Candidate) -> str:
    marks = [m for m, on in (("smallest", c.smallest), ("fastest", c.fastest), ("pareto", c.pareto)) if on]
    return ", ".join(marks)


def _row(c: Candidate) -> list[str]:
    latency = None if c.latency_p50_ms is None else c.latency_p50_ms * 1000
    return [
        c.name,
        c.status,
        _num(c.parameters, ","),
        _num(c.nonzero_parameters, ","),
        _num(c.onnx_bytes, ","),
        _num(c.gzip_bytes, ","),
        _num(c.size_ratio, ".1f"),
        _num(None if c.accuracy is None else 100 * c.accuracy, ".2f"),
        _num(c.accuracy_drop_points, "+.2f"),
        "-" if latency is None else f"{latency:.1f} µs",
        _num(c.speedup_vs_eager, ".1f"),
        _marks(c),
    ]


def rich_table(result: SearchResult) -> Table:
    eager = result.eager_latency_p50_ms
    title = (f"search: tolerance {result.max_accuracy_drop_points:g} points, {result.threads} threads, "
             f"PyTorch eager fp32 p50 b=1 {_num(None if eager is None else eager * 1000, '.1f')} µs")  # fmt: skip
    table = Table(title=title)
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in ("candidate", "status", "marks") else "right")
    table.add_row(*_row(result.baseline))
    for c in result.candidates:
        table.add_row(*[Text(cell) for cell in _row(c)], style=None if c.status == "ok" else "dim")
    return table


def print_result(result: SearchResult, console: Console | None = None, publish_to: object = None) -> None:
    """The table, every candidate's reason, the winners and, after ``--publish``, what went where."""
    console = console or Console(width=220)
    console.print(rich_table(result))
    for c in result.candidates:
        if c.reason:
            console.print(Text(f"{c.name}: {c.status}: {c.reason}"))
    smallest = next((c.name for c in result.candidates if c.smallest), None)
    fastest = next((c.name for c in result.candidates if c.fastest), None)
    if smallest is None:
        console.print(Text(f"no candidate is within {result.max_accuracy_drop_points:g} points of the checkpoint"))
    else:
        console.print(Text(f"smallest within tolerance: {smallest}; fastest within tolerance: {fastest}"))
    for c in result.candidates:
        if c.published:
            console.print(Text(f"published {c.name} as {c.published}"))
    if publish_to is not None and not any(c.published for c in result.candidates):
        console.print(Text(f"nothing published to {publish_to}: no candidate is within tolerance"))


def to_json(result: SearchResult) -> str:
    return json.dumps(result.as_dict(), indent=2) + "\n"
