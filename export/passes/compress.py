"""The compression steps as export passes: they run on the PyTorch module, before the ``onnx`` pass.

A recipe variant chains them, e.g. ``[{pass: distill, ...}, {pass: prune-structured, ratio: 0.5}, {pass: onnx},
{pass: quantize}]``. Each one takes the module the chain has so far (the checkpoint's, or the previous
torch-level pass's), never changes it, and hands a new :class:`TorchHandle` on; its
weights are also written to ``out_dir/model.safetensors`` so a run can be inspected. Training data (the
checkpoint's own splits) comes from the training stage.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from modelpress.export.compress.config import DistillConfig, StructuredConfig, UnstructuredConfig
from modelpress.export.errors import ExportError
from modelpress.export.passes.base import (
    EncoderHandle,
    ModelHandle,
    Pass,
    PassConfig,
    PassContext,
    PassOutput,
    TorchHandle,
)

WEIGHTS_FILE = "model.safetensors"


class _TorchPass(Pass):
    """A pass on a recipe-trained PyTorch module; it comes before the ``onnx`` pass."""

    accepts: ClassVar[tuple[type[ModelHandle], ...]] = (TorchHandle,)
    produces: ClassVar[type[ModelHandle]] = TorchHandle

    @classmethod
    def takes(cls, handle_type: type[ModelHandle]) -> bool:
        """A recipe-trained module only: a pretrained encoder has no checkpoint data (``distill-encoder`` does)."""
        return issubclass(handle_type, TorchHandle) and not issubclass(handle_type, EncoderHandle)

    def _teacher(self, model: ModelHandle, ctx: PassContext) -> Any:
        """The input module; ExportError unless it is a recipe-trained one (its training data is needed)."""
        source = self.take(model, TorchHandle)
        if ctx.meta is None:
            raise ExportError(
                f"the {self.name} pass needs a recipe-trained checkpoint (its data and training settings)"
            )
        return source.module

    @staticmethod
    def _splits(ctx: PassContext) -> Any:
        from modelpress.training.data import splits_for_checkpoint

        try:
            return splits_for_checkpoint(ctx.meta)
        except (ValueError, OSError) as e:
            raise ExportError(f"cannot rebuild the checkpoint's training data for fine-tuning: {e}") from e

    @staticmethod
    def _training(ctx: PassContext, epochs: int, lr: float | None, seed: int) -> Any:
        """The checkpoint's own training settings, with this pass's epochs, learning rate and seed."""
        from pydantic import ValidationError

        from modelpress.training.recipe import TrainingConfig

        raw = dict(ctx.meta.recipe.get("training") or {})
        try:
            cfg = TrainingConfig.model_validate(raw)
        except ValidationError as e:
            raise ExportError(f"the checkpoint's recorded training settings are invalid: {e.errors()[0]['msg']}") from e
        optimizer = cfg.optimizer if lr is None else cfg.optimizer.model_copy(update={"lr": lr})
        return cfg.model_copy(update={"epochs": epochs, "optimizer": optimizer, "seed": seed})

    def _finetuner(self, ctx: PassContext, epochs: int, lr: float | None, seed: int) -> Any:
        """``finetune(model, step)`` on the checkpoint's splits, or None when ``epochs`` is 0."""
        from modelpress.export.compress.finetune import make_finetune

        if epochs == 0:
            return None
        training = self._training(ctx, epochs, lr, seed)
        # Without an explicit lr, fine-tune at 0.3 × the training lr: the pruned model is already close.
        lr_scale = 1.0 if lr is not None else 0.3
        return make_finetune(self._splits(ctx), training, epochs, lr_scale=lr_scale, progress=ctx.progress)

    @staticmethod
    def _save(module: Any, out_dir: Path) -> Path:
        from safetensors.torch import save_file

        out_dir.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
        path = out_dir / WEIGHTS_FILE
        save_file(state, str(path))
        return path


class DistillPassConfig(PassConfig, DistillConfig):
    """The distillation algorithm's settings (:class:`DistillConfig`) and how the pass trains and picks students."""

    noise_std: float | None = Field(None, ge=0.0, description="input noise (default: the checkpoint's training)")
    epochs: int = Field(60, ge=1)
    lr: float | None = Field(None, gt=0.0, description="default: the checkpoint's training lr")
    seed: int = 0
    keep_last: bool = Field(
        False, description="no early stopping: train every epoch of the schedule and keep the last weights"
    )
    # More than one: students of seeds seed, seed+1, ... and the one closest to the teacher (KL) on held-out
    # data is kept (validation images, noisy copies and mixtures: 41x the 270 validation labels).
    candidates: int = Field(1, ge=1, le=16, description="students trained; the closest to the teacher is kept")


class Distill(_TorchPass):
    """Train a student (architecture from the config) on the checkpoint's data against its module."""

    name = "distill"
    config_class = DistillPassConfig
    config: DistillPassConfig

    def run(self, model: ModelHandle, out_dir: Path, ctx: PassContext) -> PassOutput:
        from modelpress.export.compress.distill import held_out_probe, teacher_fidelity
        from modelpress.export.sizes import count_parameters

        teacher = self._teacher(model, ctx)
        cfg = self.config  # a DistillConfig: the algorithm reads its own fields
        splits = self._splits(ctx)
        probe = held_out_probe(splits.X_val) if self.config.candidates > 1 else None
        tried, students = [], []
        for seed in range(self.config.seed, self.config.seed + self.config.candidates):
            student, result = self._train_one(teacher, cfg, splits, ctx, seed)
            kept = result.epochs_run if self.config.keep_last else result.best_epoch
            row = {
                "seed": seed,
                "epochs_run": result.epochs_run,
                "best_epoch": result.best_epoch,
                "kept_epoch": kept,
            }
            if probe is not None:
                row.update(teacher_fidelity(student, teacher, probe))
            tried.append(row)
            students.append(student)
        pick = min(range(len(tried)), key=lambda i: tried[i].get("probe_kl", 0.0))
        student, chosen = students[pick], tried[pick]
        details = {
            "student_parameters": count_parameters(student),
            "teacher_parameters": count_parameters(teacher),
            "epochs_run": chosen["epochs_run"],
            "best_epoch": chosen["best_epoch"],
            "kept_epoch": chosen["kept_epoch"],
        }
        if probe is not None:
            details.update({"chosen_seed": chosen["seed"], "candidates": tried, "probe_samples": len(probe)})
        self._save(student, out_dir)
        return PassOutput(TorchHandle(student), details=details)

    def _train_one(
        self, teacher: Any, cfg: Any, splits: Any, ctx: PassContext, seed: int
    ) -> tuple[Any, dict[str, Any]]:
        """One student trained from ``seed`` (its initialisation and the trainer's batch order)."""
        import torch

        from modelpress.export.compress.distill import build_student, distill

        torch.manual_seed(seed)
        try:
            student = build_student(cfg, input_shape=splits.input_shape, num_outputs=splits.num_outputs)
        except ValueError as e:
            raise ExportError(f"distill: student {cfg.architecture}: {e}") from e
        training = self._training(ctx, self.config.epochs, self.config.lr, seed)
        if self.config.noise_std is not None:
            training = training.model_copy(update={"noise_std": self.config.noise_std})
        if self.config.keep_last:  # the cosine schedule's end, not the epoch 270 validation images liked best
            stopping = training.early_stopping.model_copy(update={"enabled": False, "restore_best": False})
            training = training.model_copy(update={"early_stopping": stopping})
        try:
            return distill(teacher, splits, cfg, training, student=student, progress=ctx.progress)
        except ValueError as e:
            raise ExportError(f"distill: {e}") from e


class PruneConfig(PassConfig, UnstructuredConfig):
    """Global magnitude pruning's settings (:class:`UnstructuredConfig`) and the fine-tuning's."""

    lr: float | None = Field(None, gt=0.0, description="fine-tune lr (default: 0.3 × the checkpoint's)")
    seed: int = 0


class Prune(_TorchPass):
    """Global magnitude pruning (unstructured), iterative, fine-tuned, masks made permanent."""

    name = "prune"
    config_class = PruneConfig
    config: PruneConfig

    def run(self, model: ModelHandle, out_dir: Path, ctx: PassContext) -> PassOutput:
        from modelpress.export.compress.unstructured import prune_unstructured
        from modelpress.export.sizes import count_nonzero_parameters, count_parameters

        teacher = self._teacher(model, ctx)
        cfg = self.config  # an UnstructuredConfig: the algorithm reads its own fields
        module = copy.deepcopy(teacher)
        finetune = self._finetuner(ctx, cfg.finetune_epochs, self.config.lr, self.config.seed)
        module, records = prune_unstructured(module, cfg, finetune, progress=ctx.progress)
        details = {"steps": records, "parameters": count_parameters(module),
                   "nonzero_parameters": count_nonzero_parameters(module)}  # fmt: skip
        self._save(module, out_dir)
        return PassOutput(TorchHandle(module), details=details)


class PruneStructuredConfig(PassConfig, StructuredConfig):
    """Channel pruning's settings (:class:`StructuredConfig`) and the fine-tuning's (two steps by default)."""

    iterative_steps: int = Field(2, ge=1, le=20)
    finetune_epochs: int = Field(5, ge=0)
    lr: float | None = Field(None, gt=0.0, description="fine-tune lr (default: 0.3 × the checkpoint's)")
    seed: int = 0


class PruneStructured(_TorchPass):
    """Remove whole channels/neurons (dependency-aware), fine-tuning after each step."""

    name = "prune-structured"
    config_class = PruneStructuredConfig
    config: PruneStructuredConfig

    def run(self, model: ModelHandle, out_dir: Path, ctx: PassContext) -> PassOutput:
        import torch

        from modelpress.export.compress.heads import head_counts
        from modelpress.export.compress.structured import layer_widths, prune_structured
        from modelpress.export.sizes import count_parameters

        teacher = self._teacher(model, ctx)
        cfg = self.config  # a StructuredConfig: the algorithm reads its own fields
        module = copy.deepcopy(teacher)
        before = count_parameters(module)
        example = torch.as_tensor(ctx.data.calibration[:2], dtype=torch.float32)
        finetune = self._finetuner(ctx, cfg.finetune_epochs, self.config.lr, self.config.seed)
        try:
            module, records = prune_structured(module, example, cfg, finetune, progress=ctx.progress)
        except ValueError as e:
            raise ExportError(f"prune-structured: {e}") from e
        details = {"steps": records, "parameters_before": before, "parameters": count_parameters(module),
                   "layer_widths": layer_widths(module), "attention_heads": head_counts(module)}  # fmt: skip
        self._save(module, out_dir)
        return PassOutput(TorchHandle(module), details=details)


COMPRESSION_PASSES: tuple[type[Pass], ...] = (Distill, Prune, PruneStructured)
