"""Rich tables for the terminal: metrics per split, a confusion matrix, the trials of a search."""

from __future__ import annotations

from typing import Any

from rich.table import Table

SCALARS = ("loss", "accuracy", "macro_precision", "macro_recall", "macro_f1", "mse", "mae", "r2", "samples")
# Short headers so the table fits an 80-column terminal.
HEADERS = {"macro_precision": "macro P", "macro_recall": "macro R", "macro_f1": "macro F1", "samples": "n"}


def metrics_table(metrics: dict[str, dict[str, Any]], title: str = "metrics") -> Table:
    """One row per split (train/val/test...), one column per scalar metric present."""
    columns = [c for c in SCALARS if any(c in m for m in metrics.values())]
    table = Table(title=title)
    table.add_column("split")
    for c in columns:
        table.add_column(HEADERS.get(c, c), justify="right")
    for split, values in metrics.items():
        table.add_row(split, *(_fmt(values.get(c)) for c in columns))
    return table


def confusion_table(matrix: list[list[int]], labels: list[str] | None, title: str = "confusion matrix") -> Table:
    """Rows are the true class, columns the predicted class."""
    names = labels or [str(i) for i in range(len(matrix))]
    table = Table(title=title + " (rows: true, columns: predicted)")
    table.add_column("")
    for n in names:
        table.add_column(n, justify="right")
    for n, row in zip(names, matrix, strict=False):
        table.add_row(n, *(str(v) for v in row))
    return table


def trials_table(rows: list[dict[str, Any]], metric: str) -> Table:
    """Rows as produced by :func:`modelpress.training.tune.trial_rows`."""
    table = Table(title=f"trials ({metric})")
    for c in ("trial", "state", "value", "seconds", "params"):
        table.add_column(c, justify="right" if c in ("trial", "value", "seconds") else "left")
    for r in rows:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in r["params"].items())
        table.add_row(str(r["trial"]), r["state"], _fmt(r["value"]), _fmt(r["seconds"]), params)
    return table


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
