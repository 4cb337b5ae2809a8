"""``modelpress evaluate``: a checkpoint's metrics on its test split or on a data file."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate(
        checkpoint: Path = typer.Argument(..., help="checkpoint folder written by `modelpress train`"),
        data: Path | None = typer.Option(None, "--data", help="score every sample of this .csv or .npz instead"),
        label: str | None = typer.Option(None, "--label", help="the CSV column holding the target"),
        as_json: bool = typer.Option(False, "--json", help="print the metrics as JSON"),
    ) -> None:
        """Evaluate a checkpoint: on its own test split (same split and preprocessing), or on your data."""
        from modelpress.errors import user_errors
        from modelpress.training.api import evaluate_checkpoint
        from modelpress.training.checkpoint import read_meta

        with user_errors():
            result = evaluate_checkpoint(checkpoint, data, label)
            meta = read_meta(checkpoint)
        if as_json:
            typer.echo(json.dumps(result, indent=2))
            return
        from rich.console import Console

        from modelpress.training.report import confusion_table, metrics_table

        console = Console()
        console.print(metrics_table({result["data"]: result["metrics"]}, title=f"{checkpoint}"))
        if "confusion_matrix" in result["metrics"]:
            console.print(confusion_table(result["metrics"]["confusion_matrix"], meta.labels))
