"""``modelpress tune``: an Optuna search over the recipe's ``tune.space``, then the best recipe trained."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("tune")
    def tune(
        recipe: Path = typer.Option(..., "--recipe", help="recipe YAML with a tune: section"),
        out: Path = typer.Option(..., "--out", help="folder to create: trials.csv, best_recipe.yaml, checkpoint/"),
        trials: int | None = typer.Option(
            None,
            "--trials",
            min=1,
            help="trials in the whole study, however many workers share it (default: tune.trials)",
        ),
        storage: str | None = typer.Option(
            None, "--storage", help="Optuna storage URL shared by several workers (default: sqlite in --out)"
        ),
        storage_file: Path | None = typer.Option(
            None, "--storage-file", help="read the storage URL from this file (a mounted Secret: no password in argv)"
        ),
        storage_wait: float = typer.Option(
            60.0, "--storage-wait", min=0, help="seconds to keep retrying a storage that does not answer yet"
        ),
        data: Path | None = typer.Option(None, "--data", help="your data: a .csv or .npz file"),
        label: str | None = typer.Option(None, "--label", help="the CSV column holding the target"),
        overrides: list[str] = typer.Option([], "--set", help="override a recipe value: key.sub=value (repeatable)"),
        train_best: bool = typer.Option(True, "--train-best/--no-train-best", help="train the best recipe at the end"),
        threads: int | None = typer.Option(None, "--threads", min=1, help="torch CPU threads"),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="show progress bars"),
    ) -> None:
        """Search hyperparameters and architectures (random or TPE sampler, median pruner, optional K-fold CV)."""
        import torch

        from modelpress.errors import fail, user_errors
        from modelpress.training.api import data_overrides
        from modelpress.training.recipe import load_recipe
        from modelpress.training.tune import run_tune

        if storage_file is not None:
            if storage is not None:
                fail("give --storage or --storage-file, not both")
            storage = _read_storage_file(storage_file)
        if threads:
            torch.set_num_threads(threads)
        with user_errors():
            r = load_recipe(recipe, [*data_overrides(data, label), *overrides])
            result = run_tune(
                r,
                out,
                trials=trials,
                storage=storage,
                storage_wait=storage_wait,
                progress=progress,
                train_best=train_best,
            )
        from rich.console import Console

        from modelpress.training.report import trials_table

        console = Console()
        console.print(trials_table(result.trials, r.tune.metric))
        console.print(f"best {r.tune.metric}: {result.best_value:.4f}  params: {result.best_params}")
        console.print(f"study: {result.study_name} in {result.storage}")
        if not result.wrote_results:
            console.print(f"results written by worker {result.results_by} to {out}")
            return
        console.print(f"best recipe: {result.best_recipe}")
        if result.checkpoint:
            from modelpress.training.checkpoint import read_meta
            from modelpress.training.report import metrics_table

            console.print(
                metrics_table(read_meta(result.checkpoint).metrics, title=f"best recipe → {result.checkpoint}")
            )


def _read_storage_file(path: Path) -> str:
    from modelpress.errors import fail

    try:
        url = path.read_text().strip()
    except OSError as e:
        fail(f"--storage-file {path}: {e.strerror or e}")
    if not url:
        fail(f"--storage-file {path} is empty: it should hold the study's storage URL")
    return url
