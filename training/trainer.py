"""The training loop: optimizers, learning-rate schedules, regularisation, early stopping, AMP, DDP, resume."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from modelpress.training import distributed
from modelpress.training.data import Splits
from modelpress.training.metrics import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    classification_metrics,
    higher_is_better,
    regression_metrics,
)
from modelpress.training.recipe import OptimizerConfig, ScheduleConfig, TrainingConfig

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
EpochCallback = Callable[[int, dict[str, float]], None]


def monitor_names(task: str) -> list[str]:
    """The validation metrics early stopping (and the search) may watch for ``task``."""
    names = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    return ["val_loss", *(f"val_{n}" for n in names)]


def check_monitor(metric: str, task: str) -> None:
    if metric not in monitor_names(task):
        raise ValueError(f"unknown {task} metric {metric!r}; expected one of {', '.join(monitor_names(task))}")


def resolve_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("training.device is 'cuda' but no CUDA GPU is available")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def make_optimizer(model: nn.Module, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.name == "sgd":
        if cfg.nesterov and cfg.momentum <= 0:
            raise ValueError("training.optimizer.nesterov needs momentum > 0")
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
        )
    kind = torch.optim.Adam if cfg.name == "adam" else torch.optim.AdamW
    return kind(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


def lr_factor(step: int, cfg: ScheduleConfig, epochs: int, steps_per_epoch: int) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (linear warm-up, then the schedule)."""
    warmup = cfg.warmup_epochs * steps_per_epoch
    if step < warmup:
        return (step + 1) / warmup
    epoch = step / steps_per_epoch
    if cfg.name == "step":
        return cfg.gamma ** int(epoch // cfg.step_size)
    if cfg.name == "exponential":
        return cfg.gamma**epoch
    if cfg.name == "cosine":
        total = max(epochs * steps_per_epoch - warmup, 1)
        progress = min((step - warmup) / total, 1.0)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0


def default_loss(task: str, label_smoothing: float = 0.0) -> LossFn:
    if task == "classification":
        return lambda model, x, y: F.cross_entropy(model(x), y, label_smoothing=label_smoothing)
    return lambda model, x, y: F.mse_loss(model(x), y.reshape(len(y), -1))


@torch.no_grad()
def predict(
    model: nn.Module, X: np.ndarray, *, batch_size: int = 512, device: torch.device | None = None
) -> np.ndarray:
    """Raw outputs (logits or values) of ``model`` in eval mode for preprocessed ``X``."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    outs = [
        model(torch.from_numpy(X[i : i + batch_size]).to(device)).float().cpu() for i in range(0, len(X), batch_size)
    ]
    model.train(was_training)
    return torch.cat(outs).numpy()


def evaluate_outputs(outputs: np.ndarray, y: np.ndarray, task: str, num_classes: int | None = None) -> dict[str, Any]:
    """Loss and task metrics from raw outputs."""
    if task == "classification":
        loss = float(F.cross_entropy(torch.from_numpy(outputs), torch.from_numpy(y)).item())
        labels = list(range(num_classes)) if num_classes else None
        return {"loss": loss, **classification_metrics(y, outputs.argmax(axis=1), labels)}
    metrics = regression_metrics(y.reshape(len(y), -1), outputs)
    return {"loss": metrics["mse"], **metrics}


@dataclass
class FitResult:
    """What a training run did: its per-epoch history, the epoch it kept, how long it took.

    ``state`` is everything a later run needs to resume (weights, optimizer, RNG); :meth:`summary` is the rest,
    as the checkpoint's metadata records it.
    """

    history: list[dict[str, Any]]
    best_epoch: int
    best_value: float
    monitor: str
    epochs_run: int
    stopped_early: bool
    seconds: float
    device: str
    world_size: int
    samples_per_process: int
    state: dict[str, Any] = field(repr=False, default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Every field but the resumable state (plain values, JSON-ready)."""
        data = asdict(self)
        del data["state"]
        return data


def fit(
    model: nn.Module,
    splits: Splits,
    training_cfg: TrainingConfig | dict[str, Any],
    *,
    loss_fn: LossFn | None = None,
    progress: bool = True,
    on_epoch_end: EpochCallback | None = None,
    resume_state: dict[str, Any] | None = None,
) -> FitResult:
    """Train ``model`` in place on ``splits`` and return what happened.

    Args:
        model: built by :func:`modelpress.training.models.build_model` (or any module with the same input/output).
        splits: preprocessed data; the validation split drives early stopping.
        training_cfg: :class:`~modelpress.training.recipe.TrainingConfig` or its dict form.
        loss_fn: ``loss_fn(model, x, y) -> scalar`` replacing the task's default loss (fine-tuning after
            pruning, distillation with a teacher's soft targets). L1/L2 penalties are still added.
        progress: show a progress bar (rank 0 only).
        on_epoch_end: called as ``on_epoch_end(epoch, val_metrics)``; may raise to stop (e.g. Optuna pruning).
        resume_state: the ``state`` of an earlier run's result, to continue where it stopped.

    A fresh run seeds torch's global RNG from ``training_cfg.seed`` (0 when unset), so dropout and noise
    are reproducible; a resumed run restores the RNG state it saved instead.

    Returns:
        ``history`` (one dict per epoch), ``best_epoch``, ``best_value``, ``monitor``, ``epochs_run``,
        ``stopped_early``, ``seconds``, ``device``, ``world_size``, ``samples_per_process`` (this process's
        shard of the training split per epoch) and ``state`` (tensors to resume from).
    """
    cfg = training_cfg if isinstance(training_cfg, TrainingConfig) else TrainingConfig.model_validate(training_cfg)
    run = _Run(model, splits, cfg, loss_fn, resume_state)
    return run.train(progress=progress, on_epoch_end=on_epoch_end)


class _Run:
    """One call of :func:`fit`: the state of the loop, kept off the public surface."""

    def __init__(self, model, splits, cfg, loss_fn, resume_state):
        self.cfg = cfg
        self.splits = splits
        self.device = resolve_device(cfg.device)
        self.amp = cfg.amp and self.device.type == "cuda"
        self.seed = cfg.seed if cfg.seed is not None else 0
        self.monitor = cfg.early_stopping.metric
        check_monitor(self.monitor, splits.task)
        self.maximize = higher_is_better(self.monitor)
        self.model = model.to(self.device)
        self.net = self._wrap_ddp(self.model)
        self.loss_fn = loss_fn or default_loss(splits.task, cfg.label_smoothing)
        self.optimizer = make_optimizer(self.model, cfg.optimizer)
        world = distributed.world_size()
        self.batch_size = max(1, math.ceil(cfg.batch_size / world))  # the global batch stays cfg.batch_size
        self.steps_per_epoch = len(self._batches(0))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, cfg.schedule, cfg.epochs, self.steps_per_epoch)
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.X = torch.from_numpy(splits.X_train).to(self.device)
        self.y = torch.from_numpy(splits.y_train).to(self.device)
        self.start_epoch = 1
        self.history: list[dict[str, Any]] = []
        self.best_value = -math.inf if self.maximize else math.inf
        self.best_epoch = 0
        self.best_state = copy.deepcopy(self.model.state_dict())
        self.bad_epochs = 0
        if resume_state:
            self._load(resume_state)
        else:
            torch.manual_seed(self.seed)

    def _wrap_ddp(self, model: nn.Module) -> nn.Module:
        if not distributed.is_distributed():
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index or 0] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def _batches(self, epoch: int) -> list[np.ndarray]:
        n = len(self.splits.y_train)
        if distributed.is_distributed():
            from torch.utils.data import DistributedSampler

            sampler = DistributedSampler(range(n), shuffle=True, seed=self.seed)
            sampler.set_epoch(epoch)
            order = np.fromiter(iter(sampler), dtype=np.int64)
        else:
            gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            order = torch.randperm(n, generator=gen).numpy()
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        # a batch of one breaks batch norm in training mode: fold it into the previous batch
        if len(batches) > 1 and len(batches[-1]) == 1:
            batches[-2] = np.concatenate(batches[-2:])
            batches.pop()
        return batches

    def _penalty(self) -> torch.Tensor | float:
        if not (self.cfg.l1 or self.cfg.l2):
            return 0.0
        # weights only (matrices and kernels): penalising biases and norm scales only hurts
        weights = [p for p in self.model.parameters() if p.requires_grad and p.ndim > 1]
        total = 0.0
        if self.cfg.l1:
            total = total + self.cfg.l1 * sum(p.abs().sum() for p in weights)
        if self.cfg.l2:
            total = total + self.cfg.l2 * sum(p.pow(2).sum() for p in weights)
        return total

    def _train_epoch(self, epoch: int) -> float:
        self.net.train()
        total, count = 0.0, 0
        for idx in self._batches(epoch):
            x, y = self.X[idx], self.y[idx]
            if self.cfg.noise_std:
                x = x + self.cfg.noise_std * torch.randn_like(x)
            with torch.autocast(device_type=self.device.type, enabled=self.amp):
                loss = self.loss_fn(self.net, x, y)
            loss = loss + self._penalty()
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if self.cfg.grad_clip:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        return distributed.global_mean(total, count)

    def _validate(self) -> dict[str, float]:
        outputs = predict(self.model, self.splits.X_val, device=self.device)
        num_classes = self.splits.num_outputs if self.splits.task == "classification" else None
        metrics = evaluate_outputs(outputs, self.splits.y_val, self.splits.task, num_classes)
        return {f"val_{k}": float(v) for k, v in metrics.items() if isinstance(v, float)}

    def _improved(self, value: float) -> bool:
        delta = self.cfg.early_stopping.min_delta
        return value > self.best_value + delta if self.maximize else value < self.best_value - delta

    def train(self, *, progress: bool, on_epoch_end: EpochCallback | None) -> FitResult:
        started = time.perf_counter()
        stopped_early = False
        epochs = range(self.start_epoch, self.cfg.epochs + 1)
        bar = tqdm(epochs, desc="train", unit="epoch", disable=not progress or not distributed.is_main(), leave=False)
        for epoch in bar:
            t0 = time.perf_counter()
            train_loss = self._train_epoch(epoch)
            val = self._validate()
            row = {"epoch": epoch, "train_loss": train_loss, **val, "lr": self.optimizer.param_groups[0]["lr"]}
            row["seconds"] = time.perf_counter() - t0
            self.history.append(row)
            value = val[self.monitor]
            if self._improved(value):
                self.best_value, self.best_epoch, self.bad_epochs = value, epoch, 0
                self.best_state = copy.deepcopy(self.model.state_dict())
            else:
                self.bad_epochs += 1
            bar.set_postfix(loss=f"{train_loss:.4f}", **{self.monitor: f"{value:.4f}"})
            if on_epoch_end is not None:
                on_epoch_end(epoch, val)
            es = self.cfg.early_stopping
            if distributed.agree(es.enabled and self.bad_epochs >= es.patience) and epoch < self.cfg.epochs:
                stopped_early = True
                break
        bar.close()
        state = self._state()
        if self.cfg.early_stopping.restore_best and self.best_epoch:
            self.model.load_state_dict(self.best_state)
        self.model.eval()
        return FitResult(
            history=self.history,
            best_epoch=self.best_epoch,
            best_value=self.best_value,
            monitor=self.monitor,
            epochs_run=len(self.history),
            stopped_early=stopped_early,
            seconds=time.perf_counter() - started,
            device=str(self.device),
            world_size=distributed.world_size(),
            samples_per_process=int(sum(len(b) for b in self._batches(self.start_epoch))),
            state=state,
        )

    def _state(self) -> dict[str, Any]:
        return {
            "epoch": self.history[-1]["epoch"] if self.history else self.start_epoch - 1,
            "model": copy.deepcopy(self.model.state_dict()),
            "best_model": self.best_state,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "history": self.history,
            "rng": torch.get_rng_state(),
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.start_epoch = int(state["epoch"]) + 1
        self.history = list(state["history"])
        self.best_value = float(state["best_value"])
        self.best_epoch = int(state["best_epoch"])
        self.best_state = state["best_model"]
        self.bad_epochs = int(state["bad_epochs"])
        torch.set_rng_state(state["rng"])
