from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from modelpress.errors import fail, user_errors

if TYPE_CHECKING:
    from modelpress.export.repository import Published


REPOSITORY_HELP = "Model repository to publish into: a folder, or a URL (s3://bucket/prefix, gs://..., az://...)."
STORAGE_OPTION_HELP = "key=value passed to fsspec for a URL repository, e.g. endpoint_url=http://... (repeatable)."


def open_repository(repository: str, storage_options: list[str]):
    """The repository's store (a folder or an fsspec URL), or one ``error:`` line and exit 2."""
    from modelpress.serving.store import StoreError, open_store, parse_storage_options

    with user_errors(StoreError):
        return open_store(repository, parse_storage_options(storage_options))


def _variants(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [v.strip() for v in text.split(",")]
    if not all(items):
        fail(f"--variants {text!r}: expected a comma-separated list such as fp32,fp16,int8")
    return items


def print_published(published: list[Published]) -> None:
    """One row per published version: size, quality (accuracy or embedding fidelity) and where it landed."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="published")
    for column in ("model", "version", "precision", "bytes", "accuracy", "agreement", "mean cos", "max |Δ|", "path"):
        table.add_column(column, justify="right" if column in ("version", "bytes") else "left")
    for item in published:
        quality, size = item.manifest.quality, item.manifest.size
        agreement = quality.get("top1_agreement")
        accuracy = quality.get("accuracy")
        cosine = quality.get("mean_cosine")
        table.add_row(
            item.name,
            str(item.version),
            item.manifest.precision,
            f"{size.onnx_bytes:,}" if size else "?",
            f"{accuracy:.4f}" if accuracy is not None else "-",
            f"{100 * agreement:.2f}%" if agreement is not None else "-",
            f"{cosine:.4f}" if cosine is not None else "-",
            f"{quality['max_abs_diff']:.2g}" if "max_abs_diff" in quality else "-",  # an import with no float output
            str(item.path),
        )
        for warning in quality.get("forced", []):
            table.add_row(item.name, "", "", "", "", "", "", "", f"forced: {warning}")
    Console(width=200).print(table)


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(
        checkpoint: Path = typer.Argument(..., help="Checkpoint folder written by `modelpress train`."),
        repository: str = typer.Option(..., "--repository", "-r", help=REPOSITORY_HELP),
        storage_options: list[str] = typer.Option([], "--storage-option", help=STORAGE_OPTION_HELP),
        name: str = typer.Option(..., "--name", "-n", help="Model name; variants become NAME-fp16, NAME-int8."),
        variants: str | None = typer.Option(
            None, help="Comma-separated variants (default: the checkpoint recipe's export list, else fp32,fp16,int8)."
        ),
        version: int | None = typer.Option(None, min=1, help="Publish exactly this version (default: next free)."),
        force: bool = typer.Option(False, "--force", help="Publish variants that miss the accuracy tolerance."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Convert a checkpoint to ONNX, compress it, verify every variant and publish each as its own model."""
        with user_errors():
            from modelpress.export.api import export_checkpoint
            from modelpress.training.checkpoint import read_meta

            spec = read_meta(checkpoint).recipe.get("export")
            published = export_checkpoint(
                checkpoint, open_repository(repository, storage_options), name, variants=_variants(variants),
                spec=spec, force=force, version=version, progress=not quiet,
            )  # fmt: skip
        print_published(published)
