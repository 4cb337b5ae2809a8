"""``modelpress pipeline`` for a pretrained sentence encoder: import, export, compress, distil, measure, publish.

Variants (each a model in the repository, task ``embedding``, text in, L2-normalised vector out):
``<name>`` fp32 (ORT-fused), ``<name>-fp16``, ``<name>-int8``, ``<name>-student`` (a distilled subset of the
layers) and ``<name>-student-int8``. Every one is measured on held-out sentences against the fp32 teacher.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from modelpress.export.errors import AccuracyRefusedError, ExportError
from modelpress.export.manifest_builder import tool_versions
from modelpress.export.onnx_files import model_files
from modelpress.export.repository import Published, check_repository
from modelpress.export.spec import variant_model_name
from modelpress.export.text.fidelity import fidelity, onnx_embeddings, token_batches
from modelpress.export.text.publish import BuiltTextVariant, publish_text_variants
from modelpress.export.text.recipe import TextRecipe, load_text_recipe
from modelpress.serving.manifest import ModelManifest, PassRecord, SizeInfo, TensorSpec, TokenizerSpec
from modelpress.serving.store import RepositoryStore
from modelpress.serving.text import TextTokenizer

TEXT_INPUT = "text"
PRECISION = {"fp32": "fp32", "fp16": "fp16", "int8": "int8", "student": "fp32", "student-int8": "int8"}


@dataclass
class _Stage:
    """One fp32 encoder (teacher or student) on its way to variants: module, ONNX files, lineage so far."""

    module: Any
    onnx_path: Path
    lineage: list[PassRecord]
    calibration_reference: np.ndarray | None = None
    optimized: dict[bool, tuple[Path, PassRecord]] = field(default_factory=dict)


@dataclass
class _Context:
    recipe: TextRecipe
    work: Path
    tokenizer_file: Path
    calibration: list[dict[str, np.ndarray]]
    heldout: list[dict[str, np.ndarray]]
    reference: np.ndarray  # the fp32 PyTorch teacher on the held-out sentences
    served_max_length: int
    note: Callable[[str], None]
    source: dict[str, Any]
    progress: bool = True


def _timed(name: str, config: dict[str, Any]) -> Callable[[float, dict[str, Any]], PassRecord]:
    def record(started: float, details: dict[str, Any]) -> PassRecord:
        rec = PassRecord(name=name, config=config, seconds=round(time.perf_counter() - started, 3))
        rec.details = details  # PassRecord allows extra fields: what the step decided
        return rec

    return record


def torch_embeddings(module: Any, batches: list[dict[str, np.ndarray]]) -> np.ndarray:
    import torch

    with torch.inference_mode():
        out = [module(torch.from_numpy(b["input_ids"]), torch.from_numpy(b["attention_mask"])) for b in batches]
    return torch.cat(out).numpy().astype(np.float32)


def _export_stage(ctx: _Context, module: Any, tag: str, lineage: list[PassRecord]) -> _Stage:
    from modelpress.export.text.onnx_export import export_encoder

    ctx.note(f"{tag}: ONNX export")
    started = time.perf_counter()
    cfg = ctx.recipe.export
    path, details = export_encoder(module, ctx.work / f"{tag}-onnx", opset=cfg.opset, exporter=cfg.exporter)
    record = _timed("onnx", {"opset": cfg.opset, "exporter": cfg.exporter})(started, details)
    return _Stage(module=module, onnx_path=path, lineage=[*lineage, record])


def _optimized(ctx: _Context, stage: _Stage, tag: str, embed_layer_norm: bool) -> tuple[Path, PassRecord]:
    """The ORT-fused graph (cached per stage and fusion setting)."""
    from modelpress.export.text.optimize import encoder_dims, optimize_encoder

    if embed_layer_norm not in stage.optimized:
        if not ctx.recipe.export.optimize:
            stage.optimized[embed_layer_norm] = (stage.onnx_path, PassRecord(name="optimize", config={"off": True}))
        else:
            ctx.note(f"{tag}: ORT transformer fusions")
            heads, hidden = encoder_dims(stage.module.transformer.config)
            started = time.perf_counter()
            out = ctx.work / f"{tag}-opt-{int(embed_layer_norm)}"
            path, fusions = optimize_encoder(
                stage.onnx_path, out, num_heads=heads, hidden_size=hidden, embed_layer_norm=embed_layer_norm
            )
            config = {
                "model_type": "bert",
                "num_heads": heads,
                "hidden_size": hidden,
                "embed_layer_norm": embed_layer_norm,
            }
            stage.optimized[embed_layer_norm] = (
                path,
                _timed("ort_transformer_optimize", config)(started, {"fusions": fusions}),
            )
    return stage.optimized[embed_layer_norm]


def _int8(ctx: _Context, stage: _Stage, tag: str) -> tuple[Path, list[PassRecord]]:
    """The int8 graph of a stage, with the teacher's int8 settings or the student's own (``export.student_int8``)."""
    from modelpress.export.text.int8 import quantize_encoder_int8

    path, opt_record = _optimized(ctx, stage, tag, embed_layer_norm=False)
    if stage.calibration_reference is None:
        stage.calibration_reference = torch_embeddings(stage.module, ctx.calibration)
    started = time.perf_counter()
    config = ctx.recipe.export.int8
    if tag == "student" and ctx.recipe.export.student_int8 is not None:
        config = ctx.recipe.export.student_int8
    out, details = quantize_encoder_int8(
        path, ctx.work / f"{tag}-int8", ctx.calibration, stage.calibration_reference, config,
        on_trial=lambda trial: ctx.note(f"{tag} int8: {trial}"),
    )  # fmt: skip
    record = _timed("int8", config.model_dump(mode="json"))(started, details)
    return out, [opt_record, record]


def _fp16(ctx: _Context, stage: _Stage, tag: str) -> tuple[Path, list[PassRecord]]:
    from modelpress.export.text.fp16 import convert_encoder_fp16

    path, opt_record = _optimized(ctx, stage, tag, embed_layer_norm=True)
    ctx.note(f"{tag}: fp16")
    started = time.perf_counter()
    out = convert_encoder_fp16(path, ctx.work / f"{tag}-fp16")
    return out, [opt_record, _timed("fp16", {"keep_io_types": True})(started, {})]


DISTILL_RECORD = "distill.json"  # beside a kept student: how it was distilled, for a later run that reuses it


def _distilled(ctx: _Context, teacher: _Stage, corpus_train: list[str], validation: list[str]) -> tuple[_Stage, Path]:
    import torch

    from modelpress.training.text.distill import distill

    tokenizer = TextTokenizer(ctx.tokenizer_file, ctx.recipe.distill.max_length)

    def tokenize(texts):
        encoded = tokenizer.encode(list(texts))
        return encoded.input_ids, encoded.attention_mask

    config = ctx.recipe.distill
    started = time.perf_counter()
    if config.reuse is not None:
        ctx.note(f"student: reusing {config.reuse}")
        student, details = _reused_student(config.reuse, len(config.layers), "distill.reuse")
    else:
        start, earlier = (
            (None, None)
            if config.start_from is None
            else _reused_student(config.start_from, len(config.layers), "distill.start_from")
        )
        ctx.note(
            f"student: distilling layers {config.layers}" + (f" further from {config.start_from}" if start else "")
        )
        torch.manual_seed(ctx.recipe.seed)
        student, report = distill(
            teacher.module, corpus_train, tokenize, config, validation=validation, start=start, progress=ctx.progress
        )
        details = {**report.as_dict(), "corpus": ctx.source["corpus"]}
        if earlier is not None:
            details["started_from"] = earlier  # what the earlier run recorded: the whole history stays in the lineage
    record = _timed("distill", config.model_dump(mode="json"))(started, details)
    folder = ctx.work / "student-hf"
    student.transformer.save_pretrained(str(folder))  # a Hugging Face folder: a later recipe can start from it
    (folder / "tokenizer.json").write_bytes(ctx.tokenizer_file.read_bytes())
    (folder / DISTILL_RECORD).write_text(json.dumps(details, indent=1) + "\n")
    stage = _export_stage(ctx, student, "student", [*teacher.lineage[:1], record])
    return stage, folder


def _reused_student(folder: str, layers: int, key: str) -> tuple[Any, dict[str, Any]]:
    """A student an earlier run kept, and what that run recorded about its distillation.

    Raises:
        DistillError: the folder is not a student of ``layers`` layers.
    """
    from modelpress.training.text.distill import DistillError
    from modelpress.training.text.encoder import SentenceEncoder
    from modelpress.training.text.source import TextModelError, load_encoder, resolve_source

    try:
        source = resolve_source(folder)
        student = SentenceEncoder(load_encoder(source)).eval()
    except TextModelError as e:
        raise DistillError(f"{key}: {e}") from e
    if student.num_layers != layers:
        raise DistillError(f"{key}: {folder} has {student.num_layers} layers, distill.layers names {layers}")
    record = source.folder / DISTILL_RECORD
    earlier = json.loads(record.read_text()) if record.is_file() else {}
    return student, {**earlier, "reused": str(source.folder)}


def _manifest(
    ctx: _Context, variant: str, model_path: Path, module: Any, lineage: list[PassRecord], quality: dict
) -> ModelManifest:
    files = model_files(model_path)
    hidden = int(module.transformer.config.hidden_size)
    params = sum(int(p.numel()) for p in module.parameters())
    size = SizeInfo(
        onnx_bytes=sum(p.stat().st_size for p in files),
        gzip_bytes=sum(len(gzip.compress(p.read_bytes(), compresslevel=1)) for p in files),
        parameters=params,
    )
    return ModelManifest(
        name=variant_model_name(ctx.recipe.name, variant),
        version=1,  # the repository sets the real number when it commits the version
        task="embedding",
        precision=PRECISION[variant],
        inputs=[TensorSpec(name=TEXT_INPUT, datatype="BYTES", shape=[-1])],
        outputs=[TensorSpec(name="embedding", datatype="FP32", shape=[-1, hidden])],
        tokenizer=TokenizerSpec(file="tokenizer.json", max_length=ctx.served_max_length),
        lineage=lineage,
        size=size,
        quality=quality,
        tool_versions=tool_versions(),
        source={"family": ctx.recipe.name, "variant": variant, **ctx.source},
        graph_inputs=[{"name": n, "datatype": "INT64", "shape": [-1, -1]} for n in ("input_ids", "attention_mask")],
    )


def _judge(ctx: _Context, variant: str, quality: dict, force: bool) -> None:
    floor = ctx.recipe.export.min_mean_cosine.get(variant)
    if floor is None or quality["mean_cosine"] >= floor:
        return
    message = (
        f"{variant_model_name(ctx.recipe.name, variant)}: held-out mean cosine {quality['mean_cosine']:.4f} "
        f"to the fp32 teacher is below the recipe's floor {floor} (raise distill.epochs, or --force)"
    )
    if not force:
        raise AccuracyRefusedError(message)
    quality["forced"] = [message]


def build_text_variants(
    recipe: TextRecipe, work: Path, *, force: bool = False, progress: bool = True
) -> tuple[list[BuiltTextVariant], Path | None]:
    """Build and measure every variant the recipe lists; return them (unpublished) and the student folder."""
    from modelpress.training.text.corpus import load_corpus
    from modelpress.training.text.encoder import SentenceEncoder
    from modelpress.training.text.source import load_encoder, resolve_source

    wanted = recipe.export.variants
    steps = 3 + 2 * len(wanted) + (3 if any(v.startswith("student") for v in wanted) else 0)
    source = resolve_source(recipe.model.path)  # bad input fails before any progress bar starts
    corpus = load_corpus(
        None if recipe.data.corpus == "pydoc" else recipe.data.corpus,
        heldout_fraction=recipe.data.heldout_fraction, max_heldout=recipe.data.max_heldout,
        calibration_size=recipe.data.calibration_size, seed=recipe.seed,
    )  # fmt: skip
    with tqdm(total=steps, desc=recipe.name, unit="step", disable=not progress, leave=True) as bar:
        bar.set_description("load the model")
        teacher_module = SentenceEncoder(load_encoder(source)).eval()
        bar.update(1)
        tokenizer = TextTokenizer(source.tokenizer_file, recipe.data.max_length)
        calibration = list(token_batches(tokenizer, corpus.calibration))
        heldout = list(token_batches(tokenizer, corpus.heldout))
        ctx = _Context(
            recipe=recipe, work=work, tokenizer_file=source.tokenizer_file, calibration=calibration,
            heldout=heldout, reference=torch_embeddings(teacher_module, heldout),
            served_max_length=recipe.model.max_length or source.max_length,
            note=lambda text: bar.set_description(text), source={"model": source.spec, "corpus": corpus.describe()},
            progress=progress,
        )  # fmt: skip
        bar.update(1)
        imported = PassRecord(name="import", config={"source": "hf", "path": source.spec})
        imported.details = {"parameters": sum(int(p.numel()) for p in teacher_module.parameters()), **source.describe()}
        teacher = _export_stage(ctx, teacher_module, "teacher", [imported])
        bar.update(1)
        stages = {"teacher": teacher}
        student_folder = None
        if any(v.startswith("student") for v in wanted):
            # the calibration sentences are the validation set: outside training and the held-out set
            stages["student"], student_folder = _distilled(ctx, teacher, corpus.train, corpus.calibration)
            bar.update(3)
        built = []
        for variant in wanted:
            tag = "student" if variant.startswith("student") else "teacher"
            stage = stages[tag]
            kind = variant.removeprefix("student").lstrip("-") or "fp32"
            if kind == "int8":
                path, records = _int8(ctx, stage, tag)
            elif kind == "fp16":
                path, records = _fp16(ctx, stage, tag)
            else:
                path, record = _optimized(ctx, stage, tag, embed_layer_norm=True)
                records = [record]
            bar.update(1)
            ctx.note(f"{variant}: held-out fidelity")
            embeddings = onnx_embeddings(path, heldout)
            quality = {
                **fidelity(embeddings, ctx.reference),
                "max_abs_diff": float(np.abs(embeddings - ctx.reference).max()),
                "reference": "fp32 teacher (PyTorch), held-out sentences",
            }
            _judge(ctx, variant, quality, force)
            manifest = _manifest(ctx, variant, path, stage.module, [*stage.lineage, *records], quality)
            built.append(BuiltTextVariant(variant, manifest, path, [source.tokenizer_file]))
            bar.update(1)
    return built, student_folder


@contextlib.contextmanager
def _work_dir(workdir: Path | None) -> Iterator[Path]:
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="modelpress-text-", dir=workdir) as tmp:
        yield Path(tmp)


def run_text_pipeline(
    recipe_path: Path,
    repository: str | Path | RepositoryStore,
    *,
    workdir: Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    force: bool = False,
    progress: bool = True,
    version: int | None = None,
) -> tuple[Path | None, list[Published]]:
    """Build every variant of a text recipe and publish them all (or none) into ``repository``.

    Returns:
        The distilled student's Hugging Face folder under ``workdir`` (None without a student variant or
        ``workdir``) and what was published.

    Raises:
        ExportError: bad recipe, source, corpus, a failed check or a refused variant; nothing is published.
    """
    from modelpress.training.text.corpus import CorpusError, check_corpus_spec
    from modelpress.training.text.distill import DistillError
    from modelpress.training.text.source import TextModelError, resolve_source

    recipe = load_text_recipe(recipe_path, overrides)
    for variant in recipe.export.variants:
        variant_model_name(recipe.name, variant)
    check_repository(repository)
    if workdir is not None and workdir.exists() and not workdir.is_dir():
        raise ExportError(f"--workdir {workdir} is a file, expected a folder")
    try:
        resolve_source(recipe.model.path)  # a missing model or corpus fails before any folder is created
        check_corpus_spec(recipe.data.corpus)
        with _work_dir(workdir) as work:
            built, student = build_text_variants(recipe, work, force=force, progress=progress)
            published = publish_text_variants(repository, built, version=version)
            kept = None
            if student is not None and workdir is not None:
                kept = workdir / f"{recipe.name}-student"
                if kept.exists():
                    import shutil

                    shutil.rmtree(kept)
                student.rename(kept)
    except (TextModelError, CorpusError, DistillError) as e:
        raise ExportError(str(e)) from e
    return kept, published
