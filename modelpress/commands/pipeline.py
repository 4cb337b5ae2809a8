from __future__ import annotations

from pathlib import Path

import typer

from modelpress.commands.export import REPOSITORY_HELP, STORAGE_OPTION_HELP, open_repository, print_published
from modelpress.errors import user_errors


def register(app: typer.Typer) -> None:
    @app.command("pipeline")
    def pipeline(
        recipe: Path = typer.Option(..., "--recipe", help="Recipe YAML (model source, data, training, export)."),
        repository: str = typer.Option(..., "--repository", "-r", help=REPOSITORY_HELP),
        storage_options: list[str] = typer.Option([], "--storage-option", help=STORAGE_OPTION_HELP),
        workdir: Path = typer.Option(
            Path("modelpress-work"), help="Where the checkpoint, the export's work files and kept folders go."
        ),
        overrides: list[str] = typer.Option([], "--set", help="Override a recipe key: key.sub=value (repeatable)."),
        force: bool = typer.Option(False, "--force", help="Publish variants that miss the quality thresholds."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    ) -> None:
        """Make the recipe's model (train it, or load a pretrained one), run every export variant, publish them."""
        with user_errors():
            from modelpress.export.pipeline import run_pipeline

            result = run_pipeline(
                recipe,
                open_repository(repository, storage_options),
                workdir=workdir,
                overrides=overrides,
                force=force,
                progress=not quiet,
            )
        if result.checkpoint is not None:
            _print_training_metrics(result.checkpoint)
            print(f"checkpoint: {result.checkpoint}")
        for variant, folder in result.kept.items():
            print(f"kept ({variant}): {folder}")
        print_published(result.published)


def _print_training_metrics(checkpoint: Path) -> None:
    """The trained model's metrics on each split, as `modelpress train` prints them."""
    from rich.console import Console

    from modelpress.training.checkpoint import read_meta
    from modelpress.training.report import metrics_table

    meta = read_meta(checkpoint)
    parameters = meta.training.get("parameters", "?")
    Console().print(metrics_table(meta.metrics, title=f"trained {meta.architecture} ({parameters} parameters)"))
