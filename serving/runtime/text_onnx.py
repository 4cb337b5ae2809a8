"""Text models: clients send a BYTES tensor of texts, the graph takes token tensors.

The version's ``tokenizer.json`` turns texts into what the ONNX graph takes (``input_ids``,
``attention_mask``, ``token_type_ids``).

Texts longer than the manifest's ``tokenizer.max_length`` are truncated; which rows were is returned as the
side output :data:`TRUNCATED`, which the dataplane reports in the response parameters; each row's token count
is the side output :data:`TOKENS` (the OpenAI-style embeddings route reports it as ``usage``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modelpress.serving.batching.lengths import length_groups
from modelpress.serving.errors import ModelLoadError
from modelpress.serving.manifest import ModelManifest
from modelpress.serving.runtime.base import TOKENS, TRUNCATED
from modelpress.serving.runtime.onnx import OnnxModel, RuntimeOptions
from modelpress.serving.text import TextTokenizer, decode_text, shared_tokenizer


class TextOnnxModel(OnnxModel):
    side_outputs = (TRUNCATED, TOKENS)

    def __init__(self, manifest: ModelManifest, version_dir: Path, options: RuntimeOptions) -> None:
        super().__init__(manifest, version_dir, options)
        spec = manifest.tokenizer
        if spec is None or len(manifest.inputs) != 1 or manifest.inputs[0].datatype != "BYTES":
            raise ModelLoadError(
                f"{manifest.name} v{manifest.version}: a text model needs a tokenizer and exactly one BYTES input, "
                f"got tokenizer={spec is not None} inputs={[(s.name, s.datatype) for s in manifest.inputs]}"
            )
        self.text_input = manifest.inputs[0].name
        self._tokenizer: TextTokenizer | None = None
        self._graph_inputs: list[str] = []

    def _prepare(self, session) -> None:
        spec = self.manifest.tokenizer
        if spec is None:  # checked in __init__; kept for the type checker
            raise ModelLoadError(f"{self.manifest.name}: no tokenizer in the manifest")
        path = self.version_dir / spec.file
        share = self.options.share_weights
        self._tokenizer = shared_tokenizer(path, spec.max_length) if share else TextTokenizer(path, spec.max_length)
        self._graph_inputs = [a.name for a in session.get_inputs()]
        self._tokenizer.encode(["warm up"]).feeds(self._graph_inputs)  # graph inputs must be tokenizer outputs

    def validate(self, inputs: dict[str, np.ndarray]) -> None:
        """Reject empty, non-UTF-8 or non-string texts before they join a batch (the index is the request's)."""
        for i, value in enumerate(inputs[self.text_input].reshape(-1)):
            decode_text(value, i)

    def _feeds(self, inputs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        tokenizer = self._tokenizer
        if tokenizer is None:
            raise ModelLoadError(f"{self.manifest.name}: tokenizer not loaded")
        texts = inputs[self.text_input]
        encoded = tokenizer.encode(list(texts.reshape(-1)))
        rows = (*texts.shape[:1], -1)
        truncated = np.asarray(encoded.truncated, dtype=np.bool_).reshape(rows).any(axis=1)
        tokens = np.asarray(encoded.lengths, dtype=np.int64).reshape(rows).sum(axis=1)
        return encoded.feeds(self._graph_inputs), {TRUNCATED: truncated, TOKENS: tokens}

    def _execute(self, session, feeds: dict[str, np.ndarray], run_names: list[str]) -> list[np.ndarray]:
        """Run the batch in runs of similar length (``length_group_overhead_tokens``), results in row order."""
        overhead = self.options.length_group_overhead_tokens
        mask = feeds.get("attention_mask")
        if overhead is None or mask is None or mask.shape[0] < 2 or not self._rows_only_outputs(run_names):
            return super()._execute(session, feeds, run_names)
        lengths = mask.sum(axis=1)
        groups = length_groups(lengths, overhead)
        if len(groups) == 1:
            return super()._execute(session, feeds, run_names)
        merged: list[np.ndarray] | None = None
        for rows in groups:
            width = int(lengths[rows].max())
            part = {name: value[rows, :width] for name, value in feeds.items()}
            results = super()._execute(session, part, run_names)
            if merged is None:
                merged = [np.empty((mask.shape[0], *r.shape[1:]), dtype=r.dtype) for r in results]
            for out, r in zip(merged, results, strict=True):
                out[rows] = r
        return merged or []

    def _rows_only_outputs(self, names: list[str]) -> bool:
        """Outputs with no sequence dimension (one vector per text) can be assembled from runs of other lengths."""
        shapes = {s.name: s.shape for s in self.manifest.outputs}
        return all(len(shapes.get(n, [])) <= 2 for n in names)

    def unload(self) -> None:
        super().unload()
        self._tokenizer = None  # the shared tokenizer goes once no loaded variant holds it
