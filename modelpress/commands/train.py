"""``modelpress train``: a recipe (or a checkpoint to resume) in, a checkpoint folder out."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        out: Path = typer.Option(..., "--out", help="checkpoint folder to create (must not exist)"),
        recipe: Path | None = typer.Option(None, "--recipe", help="recipe YAML, e.g. recipes/digits.yaml"),
        data: Path | None = typer.Option(None, "--data", help="your data: a .csv or .npz file (replaces the recipe's)"),
        label: str | None = typer.Option(None, "--label", help="the CSV column holding the target"),
        overrides: list[str] = typer.Option([], "--set", help="override a recipe value: key.sub=value (repeatable)"),
        resume: Path | None = typer.Option(
            None, "--resume", help="continue a checkpoint's training (its recipe + --set), e.g. more epochs"
        ),
        threads: int | None = typer.Option(None, "--threads", min=1, help="torch CPU threads (default: torch's)"),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="show the progress bar"),
    ) -> None:
        """Train a model from a recipe and write its checkpoint (weights + metadata) atomically.

        Under `torchrun --nproc-per-node N` it trains with DDP and only rank 0 writes.
        """
        from modelpress.errors import fail, user_errors

        if recipe is None and resume is None:
            fail("give --recipe FILE (or --resume CHECKPOINT)")
        if resume is not None and (recipe is not None or data is not None):
            fail("--resume takes the recipe and data from the checkpoint; drop --recipe/--data")

        import torch

        from modelpress.training import distributed
        from modelpress.training.api import data_overrides, resume_checkpoint, train_recipe
        from modelpress.training.checkpoint import read_meta
        from modelpress.training.recipe import load_recipe

        if threads:
            torch.set_num_threads(threads)
        with user_errors():
            if resume is not None:
                resume_checkpoint(resume, out, list(overrides), progress=progress)
            else:
                items = [*data_overrides(data, label), *overrides]
                train_recipe(load_recipe(recipe, items), out, progress=progress)
        if distributed.is_main():
            _print_summary(read_meta(out), out)
        distributed.shutdown()


def _print_summary(meta, out: Path) -> None:
    from rich.console import Console

    from modelpress.training.report import metrics_table

    t = meta.training
    console = Console()
    console.print(metrics_table(meta.metrics, title=f"{meta.architecture} ({t.get('parameters', '?')} parameters)"))
    console.print(
        f"checkpoint: {out}  epochs: {t.get('epochs_run')} (best {t.get('best_epoch')} by {t.get('monitor')})  "
        f"training time: {t.get('seconds', 0):.1f} s on {t.get('device')} × {t.get('world_size', 1)}"
    )
