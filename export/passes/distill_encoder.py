"""Distil a pretrained sentence encoder into a student that keeps a subset of its layers.

The algorithm is :func:`modelpress.training.text.distill.distill`; its settings are this pass's config. The
student is saved as a Hugging Face folder (with the tokenizer and a ``distill.json`` record of how it was made)
that the run keeps, so a later recipe can export it again (``reuse``) or train it further (``start_from``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelpress.export.errors import ExportError
from modelpress.export.passes.base import EncoderHandle, ModelHandle, Pass, PassConfig, PassContext, PassOutput
from modelpress.training.text.config import DistillConfig

DISTILL_RECORD = "distill.json"  # beside a kept student: how it was distilled, for a later run that reuses it


class DistillEncoderConfig(PassConfig, DistillConfig):
    """The distillation settings (:class:`~modelpress.training.text.config.DistillConfig`) as a pass config."""


class DistillEncoder(Pass):
    """Train (or reuse) a student encoder against the input encoder on the context's training sentences."""

    name = "distill-encoder"
    config_class = DistillEncoderConfig
    config: DistillEncoderConfig
    accepts = (EncoderHandle,)
    produces = EncoderHandle

    def run(self, model: ModelHandle, out_dir: Path, ctx: PassContext) -> PassOutput:
        from modelpress.training.text.distill import DistillError

        teacher = self.take(model, EncoderHandle)
        config = self.config
        try:
            if config.reuse is not None:
                ctx.note(f"student: reusing {config.reuse}")
                student, details = _kept_student(config.reuse, len(config.layers), "reuse")
            else:
                student, details = self._distill(teacher, ctx)
        except DistillError as e:
            raise ExportError(f"{self.name}: {e}") from e
        out_dir.mkdir(parents=True, exist_ok=True)
        student.transformer.save_pretrained(str(out_dir))  # a Hugging Face folder a later recipe can start from
        tokenizer = out_dir / "tokenizer.json"
        tokenizer.write_bytes(teacher.tokenizer_file.read_bytes())
        (out_dir / DISTILL_RECORD).write_text(json.dumps(details, indent=1) + "\n")
        return PassOutput(EncoderHandle(student, tokenizer, out_dir), details=details, keep=out_dir)

    def _distill(self, teacher: EncoderHandle, ctx: PassContext) -> tuple[Any, dict[str, Any]]:
        from modelpress.serving.text import TextTokenizer
        from modelpress.training.text.distill import distill

        config, data = self.config, ctx.data
        start, earlier = (None, None)
        if config.start_from is not None:
            start, earlier = _kept_student(config.start_from, len(config.layers), "start_from")
        ctx.note(
            f"student: distilling layers {config.layers}" + (f" further from {config.start_from}" if start else "")
        )
        tokenizer = TextTokenizer(teacher.tokenizer_file, config.max_length)

        def tokenize(texts: Any) -> Any:
            encoded = tokenizer.encode(list(texts))
            return encoded.input_ids, encoded.attention_mask

        # the calibration sentences are the validation set: outside training and the held-out set
        student, report = distill(teacher.module, data.train, tokenize, config,
                                  validation=data.calibration, start=start, progress=ctx.progress)  # fmt: skip
        details = {**report.as_dict(), "corpus": data.corpus}
        if earlier is not None:
            details["started_from"] = earlier  # what the earlier run recorded: the whole history stays in the lineage
        return student, details


def _kept_student(folder: str, layers: int, key: str) -> tuple[Any, dict[str, Any]]:
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
        raise DistillError(f"{key}: {folder} has {student.num_layers} layers, layers names {layers}")
    record = source.folder / DISTILL_RECORD
    earlier = json.loads(record.read_text()) if record.is_file() else {}
    return student, {**earlier, "reused": str(source.folder)}
