"""Limits checked before a request touches a model, whatever the transport: names and versions, tensor sizes, rows.

The body limit (``max_body_bytes``) bounds the bytes; these bound what the bytes may declare: a small binary
request can still claim a huge shape, and a JSON body of ``0,`` repeated is millions of elements.
"""

from __future__ import annotations

import math
import re

from modelpress.serving.errors import BadRequestError, PayloadTooLargeError
from modelpress.serving.manifest import validate_model_name
from modelpress.serving.protocol.types import InferenceRequest
from modelpress.serving.settings import Settings

_VERSION_RE = re.compile(r"^[0-9]{1,18}$")


def check_path_names(name: str | None, version: str | None) -> None:
    """``name`` must be one safe path segment and ``version`` a number (400), else nothing reaches the repository.

    No ``..``, slash or hidden name gets near the repository folder, whatever the route or RPC does.
    """
    if name is not None:
        try:
            validate_model_name(name)
        except ValueError as e:
            raise BadRequestError(str(e)) from e
    if version is not None and not _VERSION_RE.match(version):
        raise BadRequestError(f"invalid model version {version[:40]!r}: expected a number such as 1 or 12")


def check_infer_limits(request: InferenceRequest, settings: Settings) -> None:
    """Refuse (413) an input whose declared shape exceeds max_tensor_elements or whose rows exceed max_batch_rows."""
    for item in request.inputs:
        if any(d < 0 for d in item.shape):
            continue  # an invalid shape: the dataplane names it against the model's (400)
        elements = math.prod(item.shape)
        if elements > settings.max_tensor_elements:
            raise PayloadTooLargeError(
                f"input '{item.name}': shape {item.shape} has {elements} elements, over the limit of "
                f"{settings.max_tensor_elements} (max_tensor_elements)"
            )
        check_rows(item.shape[0] if item.shape else 1, settings, f"input '{item.name}'")


def check_rows(rows: int, settings: Settings, what: str) -> None:
    """Refuse (413) more than max_batch_rows rows in one request."""
    if rows > settings.max_batch_rows:
        raise PayloadTooLargeError(
            f"{what}: {rows} rows in one request, over the limit of {settings.max_batch_rows} (max_batch_rows); "
            "split it into several requests"
        )
