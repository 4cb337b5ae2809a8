"""Validation shared by the architectures: typed configs that reject unknown keys with a clear message."""

from __future__ import annotations

import math
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from modelpress.common.validation import first_error

ConfigT = TypeVar("ConfigT", bound="ArchConfig")


class ArchConfig(BaseModel):
    """Base of every architecture's config: unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


def parse_config(cls: type[ConfigT], architecture: str, config: dict[str, Any] | None) -> ConfigT:
    """Validate ``config`` against ``cls``; raise ValueError naming an unknown key or a bad value."""
    config = dict(config or {})
    known = set(cls.model_fields)
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"unknown {architecture} config key {unknown[0]!r} (known keys: {', '.join(sorted(known))})")
    try:
        return cls.model_validate(config)
    except ValidationError as e:
        first = first_error(e)
        raise ValueError(f"invalid {architecture} config {first.where!r}: {first.message}") from e


def check_reshape(architecture: str, key: str, target: list[int], input_shape: list[int]) -> None:
    """Raise ValueError when ``target`` cannot hold exactly the features of ``input_shape``."""
    if math.prod(target) != math.prod(input_shape):
        raise ValueError(
            f"{architecture} {key} {list(target)} ({math.prod(target)} values) does not fit input_shape "
            f"{list(input_shape)} ({math.prod(input_shape)} values)"
        )
