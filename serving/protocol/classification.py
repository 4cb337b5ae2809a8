"""Triton's classification extension: an output asked for as its top classes instead of its raw values.

A requested output with ``"parameters": {"classification": k}`` (tritonclient's ``class_count=k``, over REST and
gRPC alike) comes back as BYTES of shape ``[rows, min(k, classes)]`` (``[min(k, classes)]`` for a model without a
batch dimension): per row, its k highest values as ``"<value>:<index>[:<label>]"``, highest first, the label from
the model's manifest when it has one. Values print as Triton prints them (C's ``%f`` for floats, integers as they
are), so clients that parse Triton's strings parse ours.
"""

from __future__ import annotations

import numpy as np

from modelpress.serving.errors import BadRequestError
from modelpress.serving.manifest import TensorSpec
from modelpress.serving.protocol.datatypes import V2_TO_NUMPY
from modelpress.serving.protocol.types import RequestOutput

PARAMETER = "classification"
# Orderable datatypes; BOOL and BYTES have no top classes (Triton refuses them too).
NUMERIC = frozenset(V2_TO_NUMPY) - {"BOOL", "BYTES"}


def classification_counts(outputs: list[RequestOutput] | None, specs: list[TensorSpec]) -> dict[str, int]:
    """Output name → how many top classes the request asks of it (outputs that ask none are left out).

    ``specs`` are the model's outputs; one is looked up only for an output that asks for classes.

    Raises:
        BadRequestError: a count that is not a positive integer, or an output whose values cannot be ranked.
    """
    counts: dict[str, int] = {}
    for output in outputs or []:
        count = (output.parameters or {}).get(PARAMETER)
        if count is None:
            continue
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise BadRequestError(
                f"output '{output.name}': parameter '{PARAMETER}' must be a positive integer (the number of top "
                f"classes), got {count!r}"
            )
        spec = next((s for s in specs if s.name == output.name), None)
        if spec is not None and spec.datatype not in NUMERIC:
            raise BadRequestError(
                f"output '{output.name}': {spec.datatype} values have no top classes ('{PARAMETER}' needs a "
                "numeric output)"
            )
        counts[output.name] = count
    return counts


def top_classes(values: np.ndarray, count: int, labels: list[str] | None, batched: bool) -> np.ndarray:
    """The ``count`` highest values of each row (of the whole tensor when not ``batched``) as Triton's strings."""
    rows = values.reshape(values.shape[0], -1) if batched and values.ndim else values.reshape(1, -1)
    width = rows.shape[1]
    k = min(count, width)
    # Descending and exact for every datatype: a stable ascending sort of the mirrored row, read backwards (equal
    # values then keep their index order, lowest first).
    order = (width - 1 - np.argsort(rows[:, ::-1], axis=1, kind="stable")[:, ::-1])[:, :k]
    floats = rows.dtype.kind == "f"
    out = np.empty((rows.shape[0], k), dtype=object)
    for r, row_order in enumerate(order):
        for j, index in enumerate(row_order):
            value = rows[r, index]
            text = f"{float(value):f}:{index}" if floats else f"{int(value)}:{index}"
            if labels is not None and index < len(labels):
                text += f":{labels[index]}"
            out[r, j] = text.encode()
    return out if batched else out.reshape(k)
