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
        calibration: Path | None = typer.Option(None, help="Imported model: calibration data (as for import)."),
        eval_file: Path | None = typer.Option(None, "--eval", help="Imported model: labelled data it is judged on."),
        label: str | None = typer.Option(None, help="Imported model: the --eval file's label column or array."),
        input_shape: str | None = typer.Option(None, help="Imported TorchScript: input dims without the batch."),
    ) -> None:
        """Try a grid of compressed variants; keep every candidate's figures; mark the smallest, fastest, Pareto.

        CHECKPOINT may also be a model to import (.onnx, .pt2, .pt, a Hugging Face folder): its precisions are
        searched, judged on --eval FILE --label COL.
        """
        if json_out is not None and (json_out.is_dir() or not json_out.parent.exists()):
            fail(f"--json {json_out}: expected a file path in an existing folder")
        if checkpoint.exists() and not (checkpoint / "checkpoint.json").is_file():
            if grid or sparsities or channel_ratios or student_widths or distill_epochs or finetune_epochs:
                fail(f"{checkpoint}: pruning and distillation need a trained checkpoint; an imported model "
                     "searches --precisions only")  # fmt: skip
            _search_imported(checkpoint, _names(precisions), max_accuracy_drop, calibration, eval_file, label,
                             input_shape, threads, quick, quiet, json_out, publish, name, publish_pareto)  # fmt: skip
            return
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


IMPORT_PRECISIONS = ["fp16", "fp16w", "int8"]


def _search_imported(
    source: Path, precisions: list[str] | None, max_accuracy_drop: float, calibration: Path | None,
    eval_file: Path | None, label: str | None, input_shape: str | None, threads: int, quick: bool, quiet: bool,
    json_out: Path | None, publish: Path | None, name: str | None, publish_pareto: bool,
) -> None:  # fmt: skip
    """``search`` on a model users bring: its precisions, through the import's passes and checks."""
    if publish is None and (name is not None or publish_pareto):
        fail("--name and --publish-pareto need --publish REPOSITORY")
    from modelpress.export.compress.report import print_result, to_json
    from modelpress.export.compress.search import PublishRequest
    from modelpress.export.errors import ExportError
    from modelpress.export.importers import InputSignature
    from modelpress.export.importers.api import ImportRequest
    from modelpress.export.importers.search import search_import

    wanted = [p for p in (precisions or IMPORT_PRECISIONS) if p != "fp32"]  # fp32 is the baseline
    with user_errors(ExportError):
        request = ImportRequest(
            source=source, repository=publish or Path("."), name=name or source.stem, calibration=calibration,
            eval=eval_file, label=label, signature=InputSignature.parse(input_shape) if input_shape else None,
        )  # fmt: skip
        result = search_import(request, wanted, max_accuracy_drop=max_accuracy_drop, threads=threads,
                               quick=quick, progress=not quiet,
                               publish=PublishRequest(publish, name, publish_pareto) if publish else None)  # fmt: skip
    print_result(result, publish_to=publish)
    if json_out is not None:
        tmp = json_out.with_name(f".{json_out.name}.tmp")
        tmp.write_text(to_json(result))
        tmp.replace(json_out)
