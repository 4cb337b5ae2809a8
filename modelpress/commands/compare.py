from __future__ import annotations

from pathlib import Path

import typer

from modelpress.errors import fail, user_errors


def _check_output(path: Path | None, option: str) -> None:
    if path is not None and path.is_dir():
        fail(f"{option} {path}: is a folder, expected a file path")
    if path is not None and not path.parent.exists():
        fail(f"{option} {path}: folder {path.parent} does not exist")


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def register(app: typer.Typer) -> None:
    @app.command("compare")
    def compare(
        repository: Path = typer.Argument(..., help="Model repository to compare (every model, latest version)."),
        json_out: Path | None = typer.Option(None, "--json", help="Write the report as JSON (stable schema)."),
        csv_out: Path | None = typer.Option(None, "--csv", help="Write one CSV row per variant."),
        markdown_out: Path | None = typer.Option(None, "--markdown", help="Write the table as Markdown."),
        plot_out: Path | None = typer.Option(None, "--plot", help="Draw accuracy against size to this PNG."),
        threads: int = typer.Option(2, min=1, help="Threads for ONNX Runtime and PyTorch alike."),
        batch: int = typer.Option(64, min=1, help="Batch size of the throughput measurement."),
        quick: bool = typer.Option(False, help="Shorter timing runs (noisier figures)."),
    ) -> None:
        """Compare a repository's variants: size, accuracy, latency and speedup vs PyTorch eager fp32."""
        for path, option in ((json_out, "--json"), (csv_out, "--csv"), (markdown_out, "--markdown"),
                             (plot_out, "--plot")):  # fmt: skip
            _check_output(path, option)
        if plot_out is not None and plot_out.suffix.lower() != ".png":
            fail(f"--plot {plot_out}: expected a .png file name")

        from modelpress.export.compare.build import build_report
        from modelpress.export.compare.plot import plot_report
        from modelpress.export.compare.render import print_table, to_csv, to_json, to_markdown
        from modelpress.export.compare.timing import QUICK, STANDARD

        with user_errors():
            report = build_report(repository, threads=threads, throughput_batch=batch,
                                  budget=QUICK if quick else STANDARD)  # fmt: skip
        print_table(report)
        for path, render in ((json_out, to_json), (csv_out, to_csv), (markdown_out, to_markdown)):
            if path is not None:
                _write_atomically(path, render(report))
        if plot_out is not None:
            plot_report(report, plot_out)
