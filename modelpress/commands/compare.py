from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from modelpress.errors import fail, user_errors

if TYPE_CHECKING:  # the compare stack imports onnx and torch: only when the command runs
    from modelpress.export.compare.schema import Report
    from modelpress.export.compare.timing import TimingBudget


def _check_output(path: Path | None, option: str) -> None:
    if path is not None and path.is_dir():
        fail(f"{option} {path}: is a folder, expected a file path")
    if path is not None and not path.parent.exists():
        fail(f"{option} {path}: folder {path.parent} does not exist")


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _measure(repository: Path, threads: int, batch: int, budget: TimingBudget, html_out: Path | None) -> Report:
    """Measure the repository; an empty one still gets an HTML report that says so (then the error)."""
    from modelpress.export.compare.build import CompareError, build_report, empty_report
    from modelpress.export.compare.html import to_html

    try:
        return build_report(repository, threads=threads, throughput_batch=batch, budget=budget)
    except CompareError:
        if html_out is not None and repository.is_dir():
            _write_atomically(html_out, to_html(empty_report(repository, threads, batch)))
        raise


def register(app: typer.Typer) -> None:
    @app.command("compare")
    def compare(
        repository: Path | None = typer.Argument(
            None, help="Model repository to compare (every model, latest version)."
        ),
        json_out: Path | None = typer.Option(None, "--json", help="Write the report as JSON (stable schema)."),
        csv_out: Path | None = typer.Option(None, "--csv", help="Write one CSV row per variant."),
        markdown_out: Path | None = typer.Option(None, "--markdown", help="Write the table as Markdown."),
        plot_out: Path | None = typer.Option(None, "--plot", help="Draw accuracy against size to this PNG."),
        html_out: Path | None = typer.Option(
            None, "--html", help="Write one self-contained interactive HTML report (opens from disk, no network)."
        ),
        threads: int = typer.Option(2, min=1, help="Threads for ONNX Runtime and PyTorch alike."),
        batch: int = typer.Option(64, min=1, help="Batch size of the throughput measurement."),
        quick: bool = typer.Option(False, help="Shorter timing runs (noisier figures)."),
        from_json: Path | None = typer.Option(
            None, "--from-json", help="Render a report saved with --json instead of measuring (no REPOSITORY)."
        ),
    ) -> None:
        """Compare a repository's variants: size, accuracy, latency and speedup vs PyTorch eager fp32."""
        if (repository is None) == (from_json is None):
            fail("give a model repository to measure, or --from-json REPORT.json to render a saved one (not both)")
        for path, option in ((json_out, "--json"), (csv_out, "--csv"), (markdown_out, "--markdown"),
                             (plot_out, "--plot"), (html_out, "--html")):  # fmt: skip
            _check_output(path, option)
        if plot_out is not None and plot_out.suffix.lower() != ".png":
            fail(f"--plot {plot_out}: expected a .png file name")
        if html_out is not None and html_out.suffix.lower() not in (".html", ".htm"):
            fail(f"--html {html_out}: expected a .html file name")

        from modelpress.export.compare.html import to_html
        from modelpress.export.compare.plot import plot_report
        from modelpress.export.compare.render import print_table, to_csv, to_json, to_markdown
        from modelpress.export.compare.schema import read_report
        from modelpress.export.compare.timing import QUICK, STANDARD

        with user_errors():
            if from_json is not None:
                report = read_report(from_json)
            else:
                report = _measure(repository, threads, batch, QUICK if quick else STANDARD, html_out)
        print_table(report)
        for path, render in ((json_out, to_json), (csv_out, to_csv), (markdown_out, to_markdown), (html_out, to_html)):
            if path is not None:
                _write_atomically(path, render(report))
        if plot_out is not None:
            if not report.rows:
                fail(f"--plot {plot_out}: the report has no rows to draw")
            plot_report(report, plot_out)
