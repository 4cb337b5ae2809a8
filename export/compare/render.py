"""The comparison report as a terminal table, Markdown, CSV and JSON."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable

from rich.console import Console
from rich.table import Table
from rich.text import Text

from modelpress.export.compare.runners import TEXT_BATCH, TEXT_SEQUENCE
from modelpress.export.compare.schema import Report, VariantRow


def _num(value: float | int | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _quality(row: VariantRow) -> str:
    if row.accuracy is not None:
        return _pct(row.accuracy)
    cosine = row.fidelity.get("mean_cosine")
    return "–" if cosine is None else f"cos {cosine:.4f}"


def _model(row: VariantRow) -> str:
    marks = ("*" if row.is_baseline else "") + ("†" if row.pareto else "")
    return f"{row.model}{marks}"


# (header, formatter): one place decides what a column shows, for every format.
COLUMNS: list[tuple[str, Callable[[VariantRow], str]]] = [
    ("model", _model),
    ("v", lambda r: str(r.version)),
    ("precision", lambda r: r.precision),
    ("params", lambda r: _num(r.parameters, ",")),
    ("nonzero", lambda r: _num(r.nonzero_parameters, ",")),
    ("MACs", lambda r: _num(r.macs, ",")),
    ("ONNX bytes", lambda r: _num(r.onnx_bytes, ",")),
    ("gzip bytes", lambda r: _num(r.gzip_bytes, ",")),
    ("size ×", lambda r: _num(r.size_ratio, ".1f")),
    ("acc % / fidelity", _quality),
    ("macro-F1", lambda r: _num(r.macro_f1, ".4f")),
    ("agree %", lambda r: _pct(r.teacher_agreement)),
    ("p50 ms b1", lambda r: _num(r.latency_p50_ms, ".3f")),
    ("p99 ms b1", lambda r: _num(r.latency_p99_ms, ".3f")),
    ("rows/s", lambda r: _num(r.throughput_rows_s, ",.0f")),
    ("vs torch ×", lambda r: _num(r.speedup_vs_torch, ".1f")),
    ("status", lambda r: r.status + (" (notes below)" if r.notes else "")),
]


def footer(report: Report) -> list[str]:
    machine = report.machine
    lines = [
        f"* baseline fp32 ONNX of its family (size × is relative to it); † on the size/accuracy Pareto front. "
        f"Throughput at batch {report.throughput_batch}.",
        f"Machine: {machine.get('cpu_model')} ({machine.get('logical_cpus')} logical CPUs), "
        f"flags {', '.join(machine.get('cpu_flags', [])) or 'none listed'}; {report.threads} threads.",
    ]
    if any(row.task == "embedding" for row in report.rows):
        lines.append(f"Text models: sequences of {TEXT_SEQUENCE} tokens; throughput at batch "
                     f"{min(report.throughput_batch, TEXT_BATCH)}.")  # fmt: skip
    lines += [f"{row.model}: {note}" for row in report.rows for note in row.notes]
    for family, base in report.baselines.items():
        if base.latency_p50_ms is not None:
            batch = base.throughput_batch or report.throughput_batch
            lines.append(
                f"PyTorch eager fp32 [{family}]: p50 {base.latency_p50_ms:.3f} ms, p99 {base.latency_p99_ms:.3f} ms "
                f"at batch 1; {base.throughput_rows_s:,.0f} rows/s at batch {batch}."
            )
        else:
            lines.append(f"PyTorch eager fp32 [{family}]: not measured ({'; '.join(base.notes)}).")
    return lines


def rich_table(report: Report) -> Table:
    table = Table(title=Text(f"modelpress compare: {report.repository}"), show_lines=False)
    for header, _ in COLUMNS:
        left = header in ("model", "precision", "status")
        # Figures never wrap or truncate: a squeezed number is a wrong number. Only notes may fold.
        table.add_column(header, justify="left" if left else "right", no_wrap=header != "status",
                         overflow="fold")  # fmt: skip
    for row in report.rows:
        style = "red" if row.status == "failed" else ("bold" if row.pareto else None)
        table.add_row(*(Text(fmt(row)) for _, fmt in COLUMNS), style=style)  # Text: model names are not markup
    return table


def print_table(report: Report, console: Console | None = None) -> None:
    """Print the table and its footnotes; piped output gets a wide page instead of the 80-column default."""
    console = console or Console(width=None if sys.stdout.isatty() else 220)
    console.print(rich_table(report))
    for line in footer(report):
        console.print(line, highlight=False, markup=False)


def to_markdown(report: Report) -> str:
    header = "| " + " | ".join(h for h, _ in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = ["| " + " | ".join(fmt(r).replace("|", "\\|") for _, fmt in COLUMNS) + " |" for r in report.rows]
    return "\n".join([header, rule, *body, "", *footer(report)]) + "\n"


def to_csv(report: Report) -> str:
    """One row per variant with the raw (unformatted) figures of the JSON schema.

    A CSV has no header block, so the run's conditions (threads, throughput batch, CPU flags) repeat on every
    row: a row copied into a spreadsheet elsewhere still says how it was measured.
    """
    fields = [f for f in VariantRow.model_fields if f not in ("fidelity", "lineage", "notes")]  # rows may be none
    run = {"threads": report.threads, "throughput_batch": report.throughput_batch,
           "cpu_flags": " ".join(report.machine.get("cpu_flags", []))}  # fmt: skip
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*fields, "lineage", "fidelity", "notes", *run])
    writer.writeheader()
    for row in report.rows:
        data = row.model_dump()
        writer.writerow({
            **{f: data[f] for f in fields},
            "lineage": " > ".join(row.lineage),
            "fidelity": ";".join(f"{k}={v}" for k, v in row.fidelity.items()),
            "notes": "; ".join(row.notes),
            **run,
        })  # fmt: skip
    return out.getvalue()


def to_json(report: Report) -> str:
    return report.model_dump_json(indent=2) + "\n"
