"""The recipe: one YAML file describing data, model, training and search (export owns its own section).

``load_recipe(path, ["training.epochs=3"])`` reads the file, applies ``key.sub=value`` overrides (values
are YAML-parsed, so ``3`` is an int and ``[8, 16]`` a list) and validates the result. Every section
forbids unknown keys, so a typo is an error naming the key instead of a silently ignored setting.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from modelpress.common.errors import UserError
from modelpress.common.validation import first_error
from modelpress.training.models import ARCHITECTURES, resolve_config


class RecipeError(UserError, ValueError):
    """The recipe file or an override is missing, malformed, or names something that does not exist."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Section):
    source: Literal["digits", "csv", "npz"] = "digits"
    path: str | None = Field(None, description="the CSV or NPZ file (csv/npz sources)")
    label: str | None = Field(None, description="CSV column holding the target")
    val_fraction: float = Field(0.15, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.15, gt=0.0, lt=0.5)
    standardize: bool = Field(True, description="per-feature mean/std from the training split only")

    @model_validator(mode="after")
    def _source_needs(self) -> DataConfig:
        if self.source in ("csv", "npz") and not self.path:
            raise ValueError(f"data.source {self.source!r} needs data.path")
        if self.source == "csv" and not self.label:
            raise ValueError("data.source 'csv' needs data.label (the target column)")
        return self


class ModelConfig(_Section):
    architecture: str = "cnn"
    config: dict[str, Any] = Field(default_factory=dict, description="the architecture's options")


class OptimizerConfig(_Section):
    name: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="sgd only")
    nesterov: bool = Field(False, description="sgd only; needs momentum > 0")
    betas: tuple[float, float] = (0.9, 0.999)

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> OptimizerConfig:
        if self.name == "sgd" and self.nesterov and self.momentum <= 0:
            raise ValueError("nesterov needs momentum > 0")
        return self


class ScheduleConfig(_Section):
    name: Literal["constant", "step", "exponential", "cosine"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0.0, description="linear warm-up from 0 to lr, in epochs")
    step_size: int = Field(10, ge=1, description="step: epochs between decays")
    gamma: float = Field(0.5, gt=0.0, le=1.0, description="step/exponential: decay factor")
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0, description="cosine: final lr as a fraction of lr")


class EarlyStoppingConfig(_Section):
    enabled: bool = True
    metric: str = Field("val_loss", description="val_loss, val_accuracy, val_macro_f1, val_mse, val_mae, val_r2")
    patience: int = Field(10, ge=1)
    min_delta: float = Field(0.0, ge=0.0)
    restore_best: bool = True


class TrainingConfig(_Section):
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(64, ge=1)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    l1: float = Field(0.0, ge=0.0, description="L1 penalty on weights, added to the loss")
    l2: float = Field(0.0, ge=0.0, description="L2 penalty on weights, added to the loss (see also weight_decay)")
    grad_clip: float | None = Field(None, gt=0.0, description="max global gradient norm")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    noise_std: float = Field(0.0, ge=0.0, description="Gaussian noise added to training inputs (augmentation)")
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = Field(True, description="mixed precision on CUDA; ignored on CPU")
    seed: int | None = Field(None, description="defaults to the recipe's seed")


class ParamSpec(_Section):
    """One searched hyperparameter: ``choices`` (categorical) or ``low``/``high`` (int or float)."""

    choices: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    type: Literal["int", "float"] | None = Field(None, description="default: int when low and high are ints")
    architectures: list[str] | None = Field(None, description="only searched when one of these is chosen")

    @model_validator(mode="after")
    def _one_kind(self) -> ParamSpec:
        if (self.choices is None) == (self.low is None or self.high is None):
            raise ValueError("give either choices or low and high")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        return self


class TuneConfig(_Section):
    trials: int = Field(20, ge=1)
    sampler: Literal["tpe", "random"] = "tpe"
    pruner: Literal["median", "none"] = "median"
    startup_trials: int = Field(3, ge=0, description="median pruner: trials that always run to the end")
    warmup_steps: int = Field(3, ge=0, description="median pruner: epochs (or folds) before a trial may be pruned")
    metric: str = Field("val_accuracy", description="what the search optimizes (a validation metric)")
    direction: Literal["maximize", "minimize"] = "maximize"
    heartbeat_interval: int = Field(
        10, ge=1, description="seconds between a running trial's heartbeats in the study's storage"
    )
    grace_period: int | None = Field(
        None, ge=1, description="seconds without a heartbeat before a trial counts as failed (default: 2 beats)"
    )
    cv_folds: int = Field(0, ge=0, description="K-fold cross-validation on train+val when >= 2")
    epochs: int | None = Field(None, ge=1, description="epochs per trial (default: training.epochs)")
    study_name: str | None = None
    space: dict[str, ParamSpec] = Field(default_factory=dict, description="dotted recipe key -> range")
    model_configs: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="architecture -> config used when the search picks it"
    )


class Recipe(_Section):
    name: str = "model"
    seed: int = 0
    task: Literal["classification", "regression"] = "classification"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    export: dict[str, Any] = Field(default_factory=dict, description="owned by export/, kept raw")

    @model_validator(mode="after")
    def _model_valid(self) -> Recipe:
        if self.model.architecture not in ARCHITECTURES:
            raise ValueError(
                f"unknown architecture {self.model.architecture!r}; expected one of {', '.join(ARCHITECTURES)}"
            )
        resolve_config(self.model.architecture, self.model.config)
        for arch, cfg in self.tune.model_configs.items():
            if arch not in ARCHITECTURES:
                raise ValueError(f"tune.model_configs: unknown architecture {arch!r}")
            resolve_config(arch, cfg)
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a recipe YAML, apply ``key.sub=value`` overrides and validate it.

    Raises:
        RecipeError: missing or unparsable file, malformed or unknown override key, invalid value.
    """
    return recipe_from_dict(read_recipe_yaml(path), overrides, source=str(path))


def read_recipe_yaml(path: str | Path) -> dict[str, Any]:
    """The recipe file as a mapping (every recipe, whatever its model source, is read here).

    Raises:
        RecipeError: missing or unparsable file, or not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise RecipeError(f"recipe {path} is not valid YAML: {str(e).splitlines()[0]}") from e
    if not isinstance(raw, dict):
        raise RecipeError(f"recipe {path} must be a mapping at the top level")
    return raw


def recipe_from_dict(
    raw: dict[str, Any], overrides: list[str] | tuple[str, ...] = (), *, source: str = "recipe"
) -> Recipe:
    """Validate a recipe given as a dict (e.g. a checkpoint's recorded recipe), after applying overrides."""
    raw = copy.deepcopy(raw)
    keys = [apply_override(raw, item) for item in overrides]
    _check_model_config_keys(raw, keys)
    try:
        return Recipe.model_validate(raw)
    except ValidationError as e:
        raise RecipeError(_explain(e, keys, source)) from e


def apply_override(raw: dict[str, Any], item: str) -> str:
    """Set ``key.sub=value`` in ``raw`` (value parsed as YAML) and return the key."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise RecipeError(f"--set {item!r}: expected key.sub=value")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise RecipeError(f"--set {item!r}: value is not valid YAML") from e
    set_dotted(raw, key, value)
    return key


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set a dotted key, creating intermediate mappings; unknown names are caught by validation later.

    A number indexes a list (``export.steps.student.0.epochs``); a YAML alias shares its mapping, so a step
    written once and reused with ``*name`` changes everywhere it is used.
    """
    node: Any = raw
    parts = key.split(".")
    for part in parts[:-1]:
        if isinstance(node, list):
            node = _list_item(node, part, key)
            continue
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, (dict, list)):
            raise RecipeError(f"--set {key}: {part!r} is not a section")
        node = child
    if isinstance(node, list):
        index = _list_index(node, parts[-1], key)
        node[index] = value
    else:
        node[parts[-1]] = value


def _list_index(items: list[Any], part: str, key: str) -> int:
    if not part.isdigit() or int(part) >= len(items):
        raise RecipeError(f"--set {key}: {part!r} is not an index of a list of {len(items)}")
    return int(part)


def _list_item(items: list[Any], part: str, key: str) -> Any:
    item = items[_list_index(items, part, key)]
    if not isinstance(item, (dict, list)):
        raise RecipeError(f"--set {key}: item {part} is not a section")
    return item


def _check_model_config_keys(raw: dict[str, Any], keys: list[str]) -> None:
    """Name an overridden ``model.config.<key>`` that the chosen architecture does not have."""
    from modelpress.training.models import REGISTRY

    model = raw.get("model") or {}
    arch = model.get("architecture", ModelConfig().architecture) if isinstance(model, dict) else None
    if arch not in REGISTRY:
        return  # validation reports the unknown architecture
    fields = REGISTRY[arch].config.model_fields
    for key in keys:
        parts = key.split(".")
        if parts[:2] == ["model", "config"] and len(parts) > 2 and parts[2] not in fields:
            raise RecipeError(f"unknown --set key {key!r}: {arch} has no option {parts[2]!r}")


def _explain(error: ValidationError, override_keys: list[str], source: str) -> str:
    first = first_error(error)
    loc = first.where
    if first.kind == "extra_forbidden":
        if loc in override_keys or any(k.startswith(loc + ".") for k in override_keys):
            return f"unknown --set key {loc!r}"
        return f"{source}: unknown key {loc!r}"
    message = first.plain
    if loc in override_keys:
        return f"--set {loc}: {message}"
    return f"{source}: {loc + ': ' if loc else ''}{message}"
