from __future__ import annotations

from pathlib import Path

import typer

from modelpress.commands.export import open_repository
from modelpress.errors import fail, user_errors


def _floats(text: str | None, option: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        fail(f"{option} {text!r}: expected comma-separated numbers such as 0.5,0.9")


def _widths(text: str | None) -> list[list[int]] | None:
    if text is None:
        return None
    try:
        return [[int(h) for h in item.split("x")] for item in text.split(",") if item.strip()]
    except ValueError:
        fail(f"--student-widths {text!r}: expected widths such as 16,32 (or 32x16 for two layers)")


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [v.strip() for v in text.split(",") if v.strip()]


def register(app: typer.Typer) -> None:
    @app.command("search")
    def search(
        checkpoint: Path = typer.Argument(..., help="Checkpoint folder written by `modelpress train`."),
        max_accuracy_drop: float = typer.Option(
            ...,
            "--max-accuracy-drop",
            help="Tolerance in test-accuracy points against the checkpoint (0.5 = half a point).",
        ),
        grid: Path | None = typer.Option(None, help="YAML file with the grid (see export/compress/grid.py)."),
        sparsities: str | None = typer.Option(None, help="Unstructured sparsities, e.g. 0.75,0.9."),
        channel_ratios: str | None = typer.Option(None, help="Structured pruning ratios, e.g. 0.5."),
        student_widths: str | None = typer.Option(None, help="Student hidden widths, e.g. 16,32 or 32x16."),
        precisions: str | None = typer.Option(None, help="fp32, fp16, fp16w (fp16 weights, fp32 compute), int8."),
        distill_epochs: int | None = typer.Option(None, min=1, help="Training epochs of each student."),
        finetune_epochs: int | None = typer.Option(None, min=0, help="Fine-tuning epochs after each pruning step."),
        threads: int = typer.Option(2, min=1, help="Threads for the latency figures (ORT and PyTorch alike)."),
        json_out: Path | None = typer.Option(None, "--json", help="Write every candidate's figures as JSON."),
        publish: str | None = typer.Option(
            None,
            help="Model repository (a folder or a URL such as s3://bucket/prefix): publish the smallest and fastest "
            "candidates within tolerance there.",
        ),
        storage_options: list[str] = typer.Option(
            [], "--storage-option", help="With --publish to a URL: key=value passed to fsspec (repeatable)."
        ),
        name: str | None = typer.Option(
            None, help="With --publish: base model name (<name>-<candidate>; default: the recipe's export name)."
        ),
        publish_pareto: bool = typer.Option(
            False, help="With --publish: also publish every Pareto-front candidate within tolerance."
        ),
        quick: bool = typer.Option(False, help="Shorter timing runs (noisier latency)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Try a grid of compressed variants; keep every candidate's figures; mark the smallest, fastest, Pareto."""
        if json_out is not None and (json_out.is_dir() or not json_out.parent.exists()):
            fail(f"--json {json_out}: expected a file path in an existing folder")
        overrides = {
            "sparsities": _floats(sparsities, "--sparsities"),
            "channel_ratios": _floats(channel_ratios, "--channel-ratios"),
            "student_widths": _widths(student_widths),
            "precisions": _names(precisions),
            "distill_epochs": distill_epochs,
            "finetune_epochs": finetune_epochs,
        }
        from modelpress.export.compress.grid import load_grid

        with user_errors():
            parsed = load_grid(grid, overrides)
        if not checkpoint.is_dir():
            fail(f"{checkpoint}: not a checkpoint folder (does not exist or is a file)")
        if publish is None and (name is not None or publish_pareto):
            fail("--name and --publish-pareto need --publish REPOSITORY")

        from modelpress.export.compress.report import print_result, to_json
        from modelpress.export.compress.search import PublishRequest
        from modelpress.export.compress.search import search as run_search

        with user_errors():
            result = run_search(checkpoint, parsed, max_accuracy_drop=max_accuracy_drop, threads=threads,
                                quick=quick, progress=not quiet,
                                publish=PublishRequest(open_repository(publish, storage_options), name, publish_pareto)
                                if publish else None)  # fmt: skip
        print_result(result, publish_to=publish)
        if json_out is not None:
            tmp = json_out.with_name(f".{json_out.name}.tmp")
            tmp.write_text(to_json(result))
            tmp.replace(json_out)
