"""The runtime contract: what the dataplane needs from whatever runs a model version."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from modelpress.serving.manifest import ModelManifest, TensorSpec

# Side output of text runtimes: per row, whether its text was cut to the tokenizer's maximum length.
TRUNCATED = "__truncated__"
# Side output of text runtimes: per row, its token count before truncation (special tokens included).
TOKENS = "__tokens__"


class ModelRuntime(ABC):
    """One loaded model version. ``load`` and ``predict`` block: callers run them in a worker thread."""

    def __init__(self, manifest: ModelManifest) -> None:
        self.manifest = manifest

    @property
    def inputs(self) -> list[TensorSpec]:
        return self.manifest.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self.manifest.outputs

    # Extra per-row outputs a runtime can add (e.g. which texts were truncated); not in the manifest.
    side_outputs: tuple[str, ...] = ()

    @abstractmethod
    def validate(self, inputs: dict[str, np.ndarray]) -> None:
        """Check request inputs beyond datatype and shape before they join a batch.

        Raises:
            BadRequestError: naming the input element that the model cannot take.
        """

    @abstractmethod
    def load(self) -> None:
        """Create the session and warm it up; afterwards ``ready`` is True.

        A bare ``model.onnx`` comes with an ``UnsignedManifest`` (``serving/graph_manifest.py``): ``load`` replaces
        ``manifest`` with the one its session completes, so the file is parsed once.
        """

    @abstractmethod
    def predict(self, inputs: dict[str, np.ndarray], output_names: list[str]) -> dict[str, np.ndarray]:
        """Run once on already validated inputs; return the requested outputs by name."""

    @abstractmethod
    def unload(self) -> None:
        """Release the session; afterwards ``ready`` is False."""

    @property
    @abstractmethod
    def ready(self) -> bool: ...

    @property
    @abstractmethod
    def providers(self) -> list[str]:
        """Execution providers actually in use (empty before load)."""
