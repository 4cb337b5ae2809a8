"""Attributions for KServe V1 ``:explain``: which inputs moved a prediction, from the served ONNX model alone.

The method is **occlusion**: run the instance once as sent, then once per feature (or per group of features)
with that feature replaced by a neutral value, and attribute to the feature what the prediction lost.

- Classifiers: the neutral value is the training mean where the manifest records a standardisation (0 after
  preprocessing, "an average pixel"), else 0 (a blank pixel). A feature's attribution is the drop of the
  predicted class's probability when it is occluded, divided among the features of its group.
- Text (embedding) models: the features are the words and punctuation marks of the text; occluding one removes
  it from the text. Its attribution is ``1 - cosine(embedding(text), embedding(text without it))``.

Why occlusion rather than sampled SHAP or integrated gradients: it needs no gradients (the served graph may be
int8 or fp16 ONNX), its cost is exact and small (one model row per feature plus one), it is deterministic (the
page and the tests see the same numbers twice), and a feature the model never reads gets exactly zero (the
output does not change), which sampling methods only approach. What it misses are interactions: two features
that each make up for the other's absence both get little. When a model has more features than the budget
(``explain_max_evaluations``), contiguous features are occluded together and share their group's attribution.

Every model row goes through :meth:`DataPlane.predict`, so the perturbed rows are validated, preprocessed and
batched exactly as a client's ``:predict`` would be.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from modelpress.serving.dataplane import DataPlane
from modelpress.serving.errors import BadRequestError
from modelpress.serving.manifest import ModelManifest
from modelpress.serving.served import ServedModel

METHOD = "occlusion"
# Words (with an inner apostrophe: "don't") and single punctuation marks, as BERT-style pre-tokenizers split them.
_WORD_RE = re.compile(r"\w+(?:'\w+)?|[^\w\s]")


@dataclass(frozen=True)
class Explanation:
    """What an explanation of one model's instances cost, beside the explanations themselves."""

    served: ServedModel
    explanations: list[dict]
    model_rows: int


def feature_groups(count: int, groups: int) -> list[range]:
    """``count`` features split into at most ``groups`` contiguous groups of equal size (the last may be shorter)."""
    size = max(1, math.ceil(count / max(1, groups)))
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


def word_spans(text: str) -> list[tuple[str, int, int]]:
    """The words and punctuation marks of ``text`` with their character spans."""
    return [(m.group(), m.start(), m.end()) for m in _WORD_RE.finditer(text)]


def feature_names(manifest: ModelManifest) -> list[str] | None:
    """Names of a tabular model's features when the manifest records them (``feature_names``, or in ``source``)."""
    names = (manifest.model_extra or {}).get("feature_names") or manifest.source.get("feature_names")
    return [str(n) for n in names] if isinstance(names, list) else None


class Explainer:
    """Occlusion explanations through the dataplane's prediction path.

    Args:
        dataplane: finds the model, validates, batches and runs the rows.
        max_rows: the budget: most model rows one request may run, original rows included.
    """

    def __init__(self, dataplane: DataPlane, max_rows: int) -> None:
        self.dataplane = dataplane
        self.max_rows = max_rows

    async def explain(self, name: str, version: str | None, instances: list) -> Explanation:
        """One explanation per instance, in order.

        Raises:
            BadRequestError: the model's task cannot be explained, the instances are malformed, or there are
                more instances than the budget has rows for (two each at least).
            ServingError: whatever the prediction path raises (unknown model, not ready, timeout).
        """
        served = self.dataplane.resolve(name, version)
        if not instances:
            raise BadRequestError("instances is empty: nothing to explain")
        per_instance = self.max_rows // len(instances)
        if per_instance < 2:
            raise BadRequestError(
                f"{len(instances)} instances: an explanation runs at least 2 model rows each, and one request may run "
                f"{self.max_rows} (explain_max_evaluations); send at most {self.max_rows // 2} instances"
            )
        manifest = served.manifest
        if _is_classifier(manifest):
            return await self._classifier(served, version, instances, per_instance)
        if manifest.task == "embedding" and manifest.tokenizer is not None:
            return await self._text(served, version, instances, per_instance)
        raise BadRequestError(
            f"model '{served.name}' is a {manifest.task} model with inputs "
            f"{[(s.name, s.datatype) for s in manifest.inputs]}: :explain supports classifiers with one numeric "
            "input and text embedding models"
        )

    async def _classifier(self, served: ServedModel, version: str | None, instances: list, budget: int) -> Explanation:
        manifest = served.manifest
        originals = await self._predict(served, version, instances)  # validates the instances as :predict does
        if not all(isinstance(p, dict) and "probabilities" in p for p in originals):
            raise BadRequestError(f"model '{served.name}': a classifier needs a 'logits' output to be explained")
        arrays = [np.asarray(instance, dtype=np.float64) for instance in instances]
        baseline, baseline_name = _baseline(manifest, arrays[0].size)
        rows: list[list] = []
        plans: list[list[range]] = []
        for arr in arrays:
            groups = feature_groups(arr.size, budget - 1)
            plans.append(groups)
            flat = arr.reshape(-1)
            for group in groups:
                occluded = flat.copy()
                occluded[group.start : group.stop] = baseline[group.start : group.stop]
                rows.append(occluded.reshape(arr.shape).tolist())
        perturbed = await self._predict(served, version, rows)
        names = feature_names(manifest)
        explanations, at = [], 0
        for arr, groups, original in zip(arrays, plans, originals, strict=True):
            label = original["label"]
            score = float(original["probabilities"][label])
            flat = np.zeros(arr.size, dtype=np.float64)
            for group, prediction in zip(groups, perturbed[at : at + len(groups)], strict=True):
                flat[group.start : group.stop] = (score - float(prediction["probabilities"][label])) / len(group)
            at += len(groups)
            entry = {
                "method": METHOD,
                "target": label,
                "probability": score,
                "baseline": baseline_name,
                "group_size": len(groups[0]),
                "attributions": flat.reshape(arr.shape).tolist(),
                "model_rows": 1 + len(groups),
            }
            if names is not None and len(names) == arr.size:
                entry["feature_names"] = names
            explanations.append(entry)
        return Explanation(served, explanations, len(instances) + len(rows))

    async def _text(self, served: ServedModel, version: str | None, instances: list, budget: int) -> Explanation:
        originals = await self._predict(served, version, instances)  # validates: strings, not empty
        texts: list[str] = [str(t) for t in instances]
        rows: list[str] = []
        plans: list[tuple[list[tuple[str, int, int]], list[range], list[int | None]]] = []
        for text in texts:
            words = word_spans(text)
            groups = feature_groups(len(words), budget - 1)
            slots: list[int | None] = []  # the row of each group, None when occluding it leaves no text
            for group in groups:
                start, stop = words[group.start][1], words[group.stop - 1][2]
                rest = " ".join((text[:start] + " " + text[stop:]).split())
                slots.append(len(rows) if rest else None)
                if rest:
                    rows.append(rest)
            plans.append((words, groups, slots))
        perturbed = await self._predict(served, version, rows) if rows else []
        explanations = []
        for (words, groups, slots), original in zip(plans, originals, strict=True):
            reference = _vector(original)
            values: list[float | None] = [None] * len(words)
            for group, slot in zip(groups, slots, strict=True):
                if slot is None:
                    continue
                moved = 1.0 - _cosine(reference, _vector(perturbed[slot]))
                for i in group:
                    values[i] = moved / len(group)
            explanations.append({
                "method": METHOD,
                "target": "embedding",
                "baseline": "word removed",
                "group_size": len(groups[0]) if groups else 0,
                "tokens": [w for w, _, _ in words],
                "attributions": values,
                "model_rows": 1 + sum(s is not None for s in slots),
            })  # fmt: skip
        return Explanation(served, explanations, len(instances) + len(rows))

    async def _predict(self, served: ServedModel, version: str | None, rows: list) -> list:
        predictions = (await self.dataplane.predict(served.name, version, rows)).predictions
        return predictions


def _is_classifier(manifest: ModelManifest) -> bool:
    return manifest.task == "classification" and len(manifest.inputs) == 1 and manifest.inputs[0].datatype != "BYTES"


def _baseline(manifest: ModelManifest, features: int) -> tuple[np.ndarray, str]:
    pre = manifest.preprocessing
    if pre.type == "standardize" and pre.mean is not None and len(pre.mean) == features:
        return np.asarray(pre.mean, dtype=np.float64), "training mean"
    return np.zeros(features, dtype=np.float64), "zero"


def _vector(prediction: object) -> np.ndarray:
    """An embedding row from a V1 prediction (a list, or one entry per output: the first)."""
    if isinstance(prediction, dict):
        prediction = next(iter(prediction.values()))
    return np.asarray(prediction, dtype=np.float64).reshape(-1)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    denominator = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / denominator if denominator > 0 else 0.0
