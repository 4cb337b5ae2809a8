"""What every pass shares: a static, frozen pydantic config, a ``run`` that writes a model folder, a context."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from torch import nn

    from modelpress.export.data import EvalData
    from modelpress.training.checkpoint import CheckpointMeta


class PassConfig(BaseModel):
    """Base of every pass config: unknown keys are an error, and a config never changes once built."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class PassContext:
    """What a pass may read besides its input model: the PyTorch module, its metadata and the data.

    An imported ONNX model has no PyTorch module and no checkpoint metadata: ``module`` and ``meta`` are None
    then, and only the passes on the ONNX model apply.
    """

    module: nn.Module | None
    meta: CheckpointMeta | None
    data: EvalData
    progress: bool = False


@dataclass
class PassOutput:
    """The model a pass wrote, the precision it now has (None: unchanged) and facts worth recording."""

    model_path: Path
    precision: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    # A PyTorch-level pass (distill, prune) hands its new module on here; the passes after it read it as ctx.module.
    module: Any = None


class Pass(abc.ABC):
    """One conversion or compression step.

    Subclasses set ``name`` (the registry key and the lineage entry) and ``config_class``. ``run`` reads the
    model at ``model_path`` (None for the pass that makes the first ONNX model) and writes its result as
    ``out_dir/model.onnx`` (+ external data). Heavy libraries are imported inside ``run``.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[PassConfig]]
    stage: ClassVar[str] = "onnx"  # "torch": runs on the PyTorch module, before the onnx pass

    def __init__(self, config: PassConfig):
        self.config = config

    @abc.abstractmethod
    def run(self, model_path: Path | None, out_dir: Path, ctx: PassContext) -> PassOutput: ...
