"""The pass system's contracts: model handles, a pass config, the pass context, a pass and what it returns.

A *pass* takes a **model handle** and returns one. Every model family goes through the same chain of passes;
where families differ (how a variant is judged, what calibrates it) is in the :class:`PassContext`, never in
a second pipeline. The handles:

- :class:`TorchHandle`: a PyTorch module (trained by a recipe, or distilled/pruned by an earlier pass);
- :class:`EncoderHandle`: a pretrained text encoder with its tokenizer (a Hugging Face model);
- :class:`OnnxHandle`: an ONNX file (exported by a pass, or brought by the user from another producer).

A model a user brings (an ONNX file, a Hugging Face folder, a ``torch.export`` program) is just another handle
at the start of a chain: an importer builds the handle, a :class:`~modelpress.export.chain.ChainStart`
around it (lineage record, serving contract, context), and the same passes, verification and publisher follow.
Heavy libraries (torch, onnx, onnxruntime) are imported inside ``run``, never here.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from torch import nn

    from modelpress.training.checkpoint import CheckpointMeta


class PassConfig(BaseModel):
    """Base of every pass config: unknown keys are an error, and a config never changes once built."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class ModelHandle:
    """A model at one point of a chain; subclasses say its form, ``kind`` names it in messages (with an article)."""

    kind: ClassVar[str] = "a model"


@dataclass(frozen=True)
class TorchHandle(ModelHandle):
    """A PyTorch module in eval mode: its example inputs and training data are the context's (``ctx.data``)."""

    kind: ClassVar[str] = "a PyTorch module"
    module: nn.Module


@dataclass(frozen=True)
class EncoderHandle(TorchHandle):
    """A pretrained sentence encoder (``(input_ids, attention_mask) -> embedding``) with its tokenizer.

    ``folder`` is the Hugging Face folder it was loaded from or saved to (a later run can start from it).
    """

    kind: ClassVar[str] = "a pretrained text encoder"
    tokenizer_file: Path
    folder: Path | None = None


@dataclass(frozen=True)
class OnnxHandle(ModelHandle):
    """An ONNX model file (external data beside it) and, when a pass exported it, the PyTorch source.

    ``source`` lets verification check the conversion against the module it came from; it is None for an
    ONNX file brought by the user, which is then its own reference.
    """

    kind: ClassVar[str] = "an ONNX model"
    path: Path
    source: TorchHandle | None = None


class QualityStrategy(abc.ABC):
    """How a task judges a variant against the chain's starting model (accuracy, embedding fidelity, ...).

    Built once per chain, with its held-out data and the reference outputs of the starting model.
    """

    task: str  # the manifest task it judges: classification, regression, embedding

    @abc.abstractmethod
    def measure(self, model: OnnxHandle) -> dict[str, Any]:
        """The variant's quality figures (run with ONNX Runtime on held-out data), recorded in its manifest."""

    @abc.abstractmethod
    def judge(
        self, model_name: str, variant: str, precision: str, quality: dict[str, Any], *, force: bool
    ) -> list[str]:
        """Apply the thresholds: raise when a variant must not be published, else return forced warnings.

        Raises:
            modelpress.export.errors.VerificationError: the conversion is wrong (never published).
            modelpress.export.errors.AccuracyRefusedError: a threshold missed and ``force`` is False.
        """


@dataclass
class PassContext:
    """What a pass may read besides its input handle.

    Attributes:
        quality: how this task's variants are judged (also what fidelity-aware passes aim for).
        data: the family's data for calibration and fine-tuning: :class:`modelpress.export.data.EvalData`
            (tensor models: calibration and test samples) or :class:`modelpress.export.text.data.TextData`
            (text encoders: tokenizer, training, calibration and held-out sentences).
        meta: a recipe-trained checkpoint's metadata (task, input spec, recorded training settings); None for
            pretrained or imported models.
        progress: show progress bars (long passes).
        note: show a short status line (e.g. each trial of a search inside a pass).
    """

    quality: QualityStrategy
    data: Any
    meta: CheckpointMeta | None = None
    progress: bool = False
    note: Callable[[str], None] = lambda _text: None


@dataclass
class PassOutput:
    """The handle a pass produced, the precision it now has (None: unchanged) and facts worth recording.

    ``keep`` is a folder worth keeping after the run (e.g. a distilled student a later recipe can reuse).
    """

    model: ModelHandle
    precision: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    keep: Path | None = None


H = TypeVar("H", bound=ModelHandle)


class Pass(abc.ABC):
    """One conversion or compression step.

    Subclasses set ``name`` (the registry key and the lineage entry), ``config_class``, the handle types they
    take (``accepts``) and the type they return (``produces``): a recipe's chain is checked against them before
    anything runs. ``run`` writes what it makes under ``out_dir`` (an ONNX model as ``out_dir/model.onnx``).
    """

    name: ClassVar[str]
    config_class: ClassVar[type[PassConfig]]
    accepts: ClassVar[tuple[type[ModelHandle], ...]] = (OnnxHandle,)
    produces: ClassVar[type[ModelHandle]] = OnnxHandle

    def __init__(self, config: PassConfig):
        self.config = config

    @abc.abstractmethod
    def run(self, model: ModelHandle, out_dir: Path, ctx: PassContext) -> PassOutput: ...

    @classmethod
    def takes(cls, handle_type: type[ModelHandle]) -> bool:
        """Whether a handle of ``handle_type`` is a valid input."""
        return issubclass(handle_type, cls.accepts)

    @classmethod
    def output_type(cls, handle_type: type[ModelHandle]) -> type[ModelHandle]:
        """The handle type this pass returns for an input of ``handle_type`` (a torch pass keeps the kind)."""
        return handle_type if cls.produces is TorchHandle and issubclass(handle_type, TorchHandle) else cls.produces

    def take(self, model: ModelHandle, handle_type: type[H]) -> H:
        """``model`` as a ``handle_type``; ExportError (saying what the pass takes) when it is not one."""
        if not isinstance(model, handle_type) or not isinstance(model, self.accepts):
            from modelpress.export.errors import ExportError

            wanted = " or ".join(t.kind for t in self.accepts)
            raise ExportError(f"the {self.name} pass takes {wanted}, got {model.kind}")
        return model
