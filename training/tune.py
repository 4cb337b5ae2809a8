"""Model selection and hyperparameter search with Optuna.

The search space lives in the recipe (``tune.space``: dotted recipe key -> choices or a range), including
``model.architecture``; ``tune.model_configs`` gives each architecture the config it starts from when the
search picks it. Trials are pruned by a median pruner on the per-epoch (or per-fold, with K-fold
cross-validation) validation metric. The study lives in SQLite by default, or in any storage URL Optuna
accepts, so several machines can work on one study.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelpress.common.errors import UserError
from modelpress.training.api import TrainingError, build_for_recipe, check_out_dir, seed_everything, train_recipe
from modelpress.training.data import Splits, cv_splits, load_splits
from modelpress.training.models import ARCHITECTURES
from modelpress.training.recipe import ParamSpec, Recipe, RecipeError, recipe_from_dict, set_dotted
from modelpress.training.study import (
    WORKER_ATTR,
    StudyError,
    StudySpec,
    TrialBudget,
    join_study,
    open_storage,
    redact,
    study_lock,
    worker_id,
    worker_seed,
)
from modelpress.training.trainer import evaluate_outputs, fit, monitor_names, predict

STUDY_FILE = "study.db"
BEST_RECIPE_FILE = "best_recipe.yaml"
TRIALS_FILE = "trials.csv"


class TuneError(UserError, ValueError):
    """The search space, metric or storage is not usable."""


@dataclass
class TuneResult:
    """What a worker saw of the study once it finished.

    ``wrote_results`` is true for the one worker that wrote ``best_recipe`` (and ``checkpoint``); the others
    report where that worker (``results_by``) put them.
    """

    best_value: float
    best_params: dict[str, Any]
    best_recipe: Path
    checkpoint: Path | None
    trials: list[dict[str, Any]]
    storage: str
    study_name: str
    wrote_results: bool = True
    results_by: str | None = None


def run_tune(
    recipe: Recipe,
    out_dir: Path,
    *,
    trials: int | None = None,
    storage: str | None = None,
    storage_wait: float = 60.0,
    progress: bool = True,
    train_best: bool = True,
) -> TuneResult:
    """Run this worker's share of the study, then (one worker only) write the trials table and the best recipe.

    ``trials`` (default ``tune.trials``) is the size of the whole study, however many workers share it: a worker
    starts trials until the study holds that many, waits for the other workers' running trials, and the first
    worker to find the study finished writes ``out_dir/trials.csv``, ``out_dir/best_recipe.yaml`` and
    ``out_dir/checkpoint/`` (when ``train_best``). Without ``storage`` the study lives in ``out_dir/study.db``.

    Raises:
        TuneError: a bad search space or metric, or no trial completed.
        StudyError: the storage is unusable or the study clashes with the recipe.
        CheckpointError: ``out_dir`` exists.
    """
    out_dir = Path(out_dir)
    tcfg = recipe.tune
    validate_space(recipe)
    shared = storage is not None
    if not shared:
        check_out_dir(out_dir)
    seed_everything(recipe.seed)
    data = _trial_data(recipe)
    if not shared:
        out_dir.mkdir(parents=True)
    url = storage or f"sqlite:///{(out_dir / STUDY_FILE).resolve()}"
    try:
        study = _join(recipe, url, shared, storage_wait)
    except StudyError:
        if not shared:
            shutil.rmtree(out_dir, ignore_errors=True)  # bad storage: leave nothing behind
        raise
    budget = TrialBudget(study, trials or tcfg.trials, study_lock(url, study.study_name))
    try:
        if shared and budget.finished_by() is None:
            check_out_dir(out_dir)  # a worker restarted after the study finished finds it written, not an error
        _work(budget, _Objective(recipe, data), progress)
        writer = budget.claim_results()
    finally:
        budget.close()
    rows = trial_rows(study)
    if writer:
        if shared:
            check_out_dir(out_dir)  # checked at the start too; this catches a folder made meanwhile by someone else
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_trials(rows, out_dir / TRIALS_FILE)
    if not any(r["state"] == "COMPLETE" for r in rows):
        where = out_dir / TRIALS_FILE if writer else f"study {study.study_name!r}"
        raise TuneError(f"no trial completed (see {where}); widen the space or the budget")
    best = study.best_trial
    result = TuneResult(
        best.value,
        dict(best.params),
        out_dir / BEST_RECIPE_FILE,
        None,
        rows,
        redact(url),
        study.study_name,
        wrote_results=writer,
        results_by=budget.finished_by(),
    )
    if writer:
        result.checkpoint = _write_best(best, out_dir, train_best, progress)
    return result


def _join(recipe: Recipe, url: str, shared: bool, storage_wait: float) -> Any:
    import optuna

    tcfg = recipe.tune
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(
        url, heartbeat_interval=tcfg.heartbeat_interval, grace_period=tcfg.grace_period, wait_s=storage_wait
    )
    spec = StudySpec(tcfg.study_name or recipe.name, tcfg.direction, tcfg.metric)
    return join_study(storage, spec, _sampler(recipe, shared), _pruner(recipe))


def _work(budget: TrialBudget, objective: _Objective, progress: bool) -> None:
    """Start trials while the budget allows, then wait for the other workers' trials to end."""
    metric = objective.recipe.tune.metric

    def report(study: Any, trial: Any) -> None:
        if progress:
            value = "" if trial.value is None else f" {metric}={trial.value:.4f}"
            started = len(study.get_trials(deepcopy=False))
            print(f"trial {trial.number} {trial.state.name}{value} ({started}/{budget.total} started)", flush=True)

    while budget.run_one(objective, catch=(TrainingError, RecipeError), callback=report):
        pass
    budget.wait_finished(poll_s=objective.recipe.tune.heartbeat_interval, progress=progress)


def _write_best(best: Any, out_dir: Path, train_best: bool, progress: bool) -> Path | None:
    """The best recipe (replaced atomically) and, if asked, its trained checkpoint."""
    best_recipe = recipe_from_dict(json.loads(best.user_attrs["recipe"]), source=f"trial {best.number}")
    _replace_text(out_dir / BEST_RECIPE_FILE, best_recipe.to_yaml())
    return train_recipe(best_recipe, out_dir / "checkpoint", progress=progress) if train_best else None


def _replace_text(path: Path, text: str) -> None:
    """Write beside, then rename: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def validate_space(recipe: Recipe) -> None:
    """Check every searched key once, before any trial, so a typo fails fast with its name."""
    tcfg = recipe.tune
    if tcfg.metric not in monitor_names(recipe.task):
        raise TuneError(f"unknown tune.metric {tcfg.metric!r}; expected one of {', '.join(monitor_names(recipe.task))}")
    if not tcfg.space:
        raise TuneError("tune.space is empty: declare at least one hyperparameter to search")
    for key, spec in tcfg.space.items():
        if key.startswith(("tune.", "export.", "data.")) or key in ("seed", "name", "task"):
            raise TuneError(f"tune.space key {key!r} cannot be searched (only model and training settings)")
        if key == "model.architecture":
            if spec.choices is None:
                raise TuneError("tune.space key 'model.architecture' needs choices")
            for arch in spec.choices:
                _check_values(recipe, key, {key: arch}, {})
            continue
        unknown = sorted(set(spec.architectures or ()) - set(ARCHITECTURES))
        if unknown:
            raise TuneError(f"tune.space key {key!r}: unknown architecture {unknown[0]!r} in architectures")
        value = spec.choices[0] if spec.choices is not None else _cast(spec, spec.low)
        # check the key against an architecture it will actually be sampled with
        arch = spec.architectures[0] if spec.architectures else recipe.model.architecture
        _check_values(recipe, key, {"model.architecture": arch, key: value}, {key: spec})


def _check_values(recipe: Recipe, key: str, values: dict[str, Any], specs: dict[str, ParamSpec]) -> None:
    raw = _apply(recipe.model_dump(mode="json"), recipe, values, specs)
    try:
        recipe_from_dict(raw, source="tune.space")
    except RecipeError as e:
        raise TuneError(f"tune.space key {key!r}: {str(e).removeprefix('tune.space: ')}") from e


def trial_rows(study: Any) -> list[dict[str, Any]]:
    rows = []
    for t in study.trials:
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else None
        rows.append(
            {"trial": t.number, "state": t.state.name, "value": t.value, "seconds": seconds, "params": t.params}
        )
    return rows


class _Objective:
    def __init__(self, recipe: Recipe, data: Splits | list[Splits]):
        self.recipe = recipe
        self.base = recipe.model_dump(mode="json")
        self.data = data

    def __call__(self, trial: Any) -> float:
        import optuna

        trial.set_user_attr(WORKER_ATTR, worker_id())
        values = self._sample(trial)
        active = {k: v for k, v in self.recipe.tune.space.items() if k in values}
        raw = _apply(copy.deepcopy(self.base), self.recipe, values, active)
        if self.recipe.tune.epochs:
            raw["training"]["epochs"] = self.recipe.tune.epochs
        recipe = recipe_from_dict(raw, source=f"trial {trial.number}")
        full = copy.deepcopy(raw)
        full["training"]["epochs"] = self.recipe.training.epochs
        trial.set_user_attr("recipe", json.dumps(full))
        folds = self.data if isinstance(self.data, list) else [self.data]
        scores: list[float] = []
        for k, splits in enumerate(folds):
            report = None
            if len(folds) == 1:

                def report(epoch: int, val: dict[str, float]) -> None:
                    trial.report(val[recipe.tune.metric], epoch)
                    if trial.should_prune():
                        raise optuna.TrialPruned()

            scores.append(_train_once(recipe, splits, report))
            if len(folds) > 1:
                trial.report(sum(scores) / len(scores), k)
                if trial.should_prune():
                    raise optuna.TrialPruned()
        value = sum(scores) / len(scores)
        if not math.isfinite(value):
            raise TrainingError(f"trial {trial.number}: metric is {value}")
        return value

    def _sample(self, trial: Any) -> dict[str, Any]:
        space = self.recipe.tune.space
        values: dict[str, Any] = {}
        arch = self.recipe.model.architecture
        if "model.architecture" in space:
            arch = values["model.architecture"] = trial.suggest_categorical(
                "model.architecture", space["model.architecture"].choices
            )
        for key, spec in space.items():
            if key == "model.architecture" or (spec.architectures and arch not in spec.architectures):
                continue
            values[key] = _suggest(trial, key, spec)
        return values


def _suggest(trial: Any, key: str, spec: ParamSpec) -> Any:
    if spec.choices is not None:
        # Optuna stores categorical choices as JSON-able scalars; lists become their JSON text
        options = [json.dumps(c) if isinstance(c, list | dict) else c for c in spec.choices]
        picked = trial.suggest_categorical(key, options)
        return json.loads(picked) if isinstance(picked, str) and picked[:1] in "[{" else picked
    if _is_int(spec):
        step = int(spec.step) if spec.step else 1
        return trial.suggest_int(key, int(spec.low), int(spec.high), step=step, log=spec.log)
    return trial.suggest_float(key, spec.low, spec.high, step=spec.step, log=spec.log)


def _is_int(spec: ParamSpec) -> bool:
    if spec.type:
        return spec.type == "int"
    return float(spec.low).is_integer() and float(spec.high).is_integer() and (spec.step or 1) == int(spec.step or 1)


def _cast(spec: ParamSpec, value: Any) -> Any:
    return int(value) if _is_int(spec) else float(value)


def _apply(raw: dict[str, Any], recipe: Recipe, values: dict[str, Any], specs: dict[str, ParamSpec]) -> dict[str, Any]:
    """Write sampled values into a recipe dict; a newly chosen architecture starts from its model_configs entry."""
    arch = values.get("model.architecture", recipe.model.architecture)
    if arch != recipe.model.architecture:
        raw["model"]["config"] = copy.deepcopy(recipe.tune.model_configs.get(arch, {}))
    elif arch in recipe.tune.model_configs:
        raw["model"]["config"] = {**raw["model"]["config"], **recipe.tune.model_configs[arch]}
    for key, value in values.items():
        set_dotted(raw, key, value)
    return raw


def _train_once(recipe: Recipe, splits: Splits, report: Any) -> float:
    model = build_for_recipe(recipe, splits)
    cfg = recipe.training.model_copy(update={"seed": recipe.seed})
    fit(model, splits, cfg, progress=False, on_epoch_end=report)
    metrics = evaluate_outputs(
        predict(model, splits.X_val),
        splits.y_val,
        recipe.task,
        splits.num_outputs if recipe.task == "classification" else None,
    )
    return float(metrics[recipe.tune.metric.removeprefix("val_")])


def _trial_data(recipe: Recipe) -> Splits | list[Splits]:
    if recipe.tune.cv_folds >= 2:
        return cv_splits(recipe.data, recipe.seed, recipe.tune.cv_folds, task=recipe.task)
    return load_splits(recipe.data, recipe.seed, task=recipe.task)


def _sampler(recipe: Recipe, shared: bool) -> Any:
    import optuna

    seed = worker_seed(recipe.seed, shared)
    if recipe.tune.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def _pruner(recipe: Recipe) -> Any:
    import optuna

    tcfg = recipe.tune
    if tcfg.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=tcfg.startup_trials, n_warmup_steps=tcfg.warmup_steps)
    return optuna.pruners.NopPruner()


def _write_trials(rows: list[dict[str, Any]], path: Path) -> None:
    keys = sorted({k for r in rows for k in r["params"]})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["trial", "state", "value", "seconds", *keys])
        for r in rows:
            writer.writerow([r["trial"], r["state"], r["value"], r["seconds"], *(r["params"].get(k) for k in keys)])
    os.replace(tmp, path)
