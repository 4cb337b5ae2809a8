"""``modelpress import``: models users bring (an ONNX file, a Hugging Face folder, a PyTorch program)."""

from __future__ import annotations

from pathlib import Path

import typer

from modelpress.commands.export import (
    REPOSITORY_HELP,
    STORAGE_OPTION_HELP,
    _variants,
    open_repository,
    print_published,
)
from modelpress.errors import fail, user_errors

TASKS = ("classification", "embedding", "regression", "generic")


def register(app: typer.Typer) -> None:
    @app.command("import")
    def import_(
        source: Path = typer.Argument(
            ...,
            help="An .onnx file, a Hugging Face model folder, or a PyTorch program (.pt2 from torch.export, .pt)",
        ),
        repository: str = typer.Option(..., "--repository", "-r", help=REPOSITORY_HELP),
        storage_options: list[str] = typer.Option([], "--storage-option", help=STORAGE_OPTION_HELP),
        name: str = typer.Option(..., "--name", "-n", help="Model name; variants become NAME-fp16, NAME-int8."),
        variants: str = typer.Option(
            "fp32,fp16,int8", help="Comma-separated: fp32, fp16, int8 (static on CNNs), int8-static, int8-dynamic."
        ),
        calibration: Path | None = typer.Option(
            None, help="Typical inputs for static int8: .npz (one array per input), .csv, or .txt (text models)."
        ),
        eval_file: Path | None = typer.Option(
            None, "--eval", help="Inputs (and labels) every variant is checked on (default: the calibration data)."
        ),
        label: str | None = typer.Option(None, help="The --eval file's label column (CSV) or array (NPZ)."),
        task: str | None = typer.Option(
            None, help="classification, embedding, regression or generic (default: from the source, else generic)."
        ),
        input_shape: str | None = typer.Option(
            None, help="PyTorch programs without a signature: input dims without the batch, e.g. 3,32,32."
        ),
        force: bool = typer.Option(False, "--force", help="Publish variants that miss the tolerance."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Import a model you trained elsewhere: compress, verify each variant against it, publish."""
        if task is not None and task not in TASKS:
            fail(f"--task {task!r}: expected one of {', '.join(TASKS)}")
        from modelpress.export.errors import ExportError
        from modelpress.export.importers import InputSignature
        from modelpress.export.importers.api import ImportRequest, import_model

        with user_errors(ExportError):
            request = ImportRequest(
                source=source, repository=open_repository(repository, storage_options), name=name,
                variants=_variants(variants) or [],
                calibration=calibration, eval=eval_file, label=label, task=task,  # type: ignore[arg-type]
                signature=InputSignature.parse(input_shape) if input_shape else None, force=force,
            )  # fmt: skip
            published = import_model(request, progress=not quiet)
        print_published(published)
