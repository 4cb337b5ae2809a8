from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from modelpress.errors import fail, user_errors

if TYPE_CHECKING:
    from modelpress.export.repository import Published


def _user_error_types() -> tuple[type[BaseException], ...]:
    from modelpress.export.errors import ExportError
    from modelpress.training.api import TrainingError
    from modelpress.training.checkpoint import CheckpointError
    from modelpress.training.data import DataError
    from modelpress.training.recipe import RecipeError

    return ExportError, CheckpointError, RecipeError, DataError, TrainingError


def _variants(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [v.strip() for v in text.split(",")]
    if not all(items):
        fail(f"--variants {text!r}: expected a comma-separated list such as fp32,fp16,int8")
    return items


def _print_summary(published: list[Published]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="published")
    for column in ("model", "version", "precision", "bytes", "accuracy", "agreement", "max |Δ|", "path"):
        table.add_column(column, justify="right" if column in ("version", "bytes") else "left")
    for item in published:
        quality, size = item.manifest.quality, item.manifest.size
        agreement = quality.get("top1_agreement")
        accuracy = quality.get("accuracy")
        table.add_row(
            item.name,
            str(item.version),
            item.manifest.precision,
            f"{size.onnx_bytes:,}" if size else "?",
            f"{accuracy:.4f}" if accuracy is not None else "-",
            f"{100 * agreement:.2f}%" if agreement is not None else "-",
            f"{quality['max_abs_diff']:.2g}" if "max_abs_diff" in quality else "-",  # an import with no float output
            str(item.path),
        )
        for warning in quality.get("forced", []):
            table.add_row(item.name, "", "", "", "", "", "", f"forced: {warning}")
    Console(width=200).print(table)


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(
        checkpoint: Path = typer.Argument(..., help="Checkpoint folder written by `modelpress train`."),
        repository: Path = typer.Option(..., "--repository", "-r", help="Model repository to publish into."),
        name: str = typer.Option(..., "--name", "-n", help="Model name; variants become NAME-fp16, NAME-int8."),
        variants: str | None = typer.Option(
            None, help="Comma-separated variants (default: the checkpoint recipe's export list, else fp32,fp16,int8)."
        ),
        version: int | None = typer.Option(None, min=1, help="Publish exactly this version (default: next free)."),
        force: bool = typer.Option(False, "--force", help="Publish variants that miss the accuracy tolerance."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Convert a checkpoint to ONNX, compress it, verify every variant and publish each as its own model."""
        with user_errors(*_user_error_types()):
            from modelpress.export.api import export_checkpoint
            from modelpress.training.checkpoint import read_meta

            spec = read_meta(checkpoint).recipe.get("export")
            published = export_checkpoint(
                checkpoint, repository, name, variants=_variants(variants), spec=spec, force=force,
                version=version, progress=not quiet,
            )  # fmt: skip
        _print_summary(published)

    @app.command("pipeline")
    def pipeline(
        recipe: Path = typer.Option(..., "--recipe", help="Recipe YAML (data, model, training, export)."),
        repository: Path = typer.Option(..., "--repository", "-r", help="Model repository to publish into."),
        workdir: Path = typer.Option(Path("modelpress-work"), help="Where the trained checkpoint is written."),
        overrides: list[str] = typer.Option([], "--set", help="Override a recipe key: key.sub=value (repeatable)."),
        force: bool = typer.Option(False, "--force", help="Publish variants that miss the accuracy tolerance."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    ) -> None:
        """Train the recipe, then run every export step it lists and publish the variants."""
        with user_errors(*_user_error_types()):
            from modelpress.export.pipeline import run_pipeline

            checkpoint, published = run_pipeline(
                recipe, repository, workdir=workdir, overrides=overrides, force=force, progress=not quiet
            )
        _print_training_metrics(checkpoint)
        print(f"checkpoint: {checkpoint}")
        _print_summary(published)


def _print_training_metrics(checkpoint: Path | None) -> None:
    """The trained model's metrics on each split, as `modelpress train` prints them (recipes that train)."""
    if checkpoint is None or not (checkpoint / "checkpoint.json").is_file():
        return  # a pretrained text model: its fidelity is in the summary below
    from rich.console import Console

    from modelpress.training.checkpoint import read_meta
    from modelpress.training.report import metrics_table

    meta = read_meta(checkpoint)
    parameters = meta.training.get("parameters", "?")
    Console().print(metrics_table(meta.metrics, title=f"trained {meta.architecture} ({parameters} parameters)"))
