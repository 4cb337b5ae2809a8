"""Sentence embeddings of a served text model, transport-neutral (the OpenAI-style route is its adapter).

A text model (its manifest names a tokenizer, task ``embedding``) takes a BYTES tensor of texts; this runs a
list of texts through the same data plane as V2 and V1 (validation, batcher, metrics) and returns one vector
per text with its token count from the model's own tokenizer.

Two rules a V2 client does not meet: a text longer than the model's ``tokenizer.max_length`` is refused rather
than truncated (as OpenAI refuses input over a model's context length), and ``dimensions`` may shorten the
vector only for a model whose manifest declares it was trained for that size (``embedding.truncatable_dimensions``,
Matryoshka training); the cut vector is renormalised to unit length. Any other size is refused: the first ``d``
values of an ordinary encoder's vector are not a good ``d``-dimensional embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelpress.serving.dataplane import DataPlane
from modelpress.serving.errors import BadRequestError
from modelpress.serving.runtime.base import TOKENS
from modelpress.serving.served import ServedModel


class EmbeddingRequestError(BadRequestError):
    """A request the embeddings route refuses; ``param`` names the request field at fault (as OpenAI's errors do)."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


@dataclass(frozen=True)
class Embeddings:
    """One vector per input text (float32 ``[n, d]``) and each text's token count (special tokens included)."""

    served: ServedModel
    vectors: np.ndarray
    tokens: list[int]

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens)


def is_text_embedding(served: ServedModel) -> bool:
    """Whether the model takes text and answers one vector per text."""
    m = served.manifest
    return m.tokenizer is not None and m.task == "embedding" and len(m.outputs) == 1


def embedding_size(served: ServedModel) -> int | None:
    """The vector length the manifest declares (None when dynamic)."""
    shape = served.manifest.outputs[0].shape
    return shape[-1] if len(shape) == 2 and shape[-1] > 0 else None


def text_model(dataplane: DataPlane, name: str) -> ServedModel:
    """The served text embedding model called ``name``.

    Raises:
        ModelNotFoundError: no such model.
        EmbeddingRequestError: the model does not take text (``param`` "model").
    """
    served = dataplane.resolve(name, None)
    if not is_text_embedding(served):
        m = served.manifest
        inputs = [f"{s.name} {s.datatype}" for s in m.inputs]
        raise EmbeddingRequestError(
            f"model '{name}' is not a text embedding model (task {m.task}, inputs {inputs}): embeddings are served "
            f"for models that take text; call /v2/models/{name}/infer for this one",
            param="model",
            code="model_not_supported",
        )
    return served


def check_dimensions(served: ServedModel, dimensions: int | None) -> None:
    """Accept ``dimensions`` when it is the full size or a size the manifest declares (see the module docstring).

    Raises:
        EmbeddingRequestError: any other value (``param`` "dimensions").
    """
    if dimensions is None:
        return
    full = embedding_size(served)
    allowed = sorted({*(served.manifest.embedding.truncatable_dimensions if served.manifest.embedding else [])})
    if dimensions == full or dimensions in allowed:
        return
    sizes = f"{allowed} or its full size {full}" if allowed else f"only its full size {full}"
    raise EmbeddingRequestError(
        f"model '{served.name}' cannot shorten its embeddings to {dimensions} dimensions: it takes {sizes} "
        "(a manifest lists the sizes its model was trained to be cut to in embedding.truncatable_dimensions)",
        param="dimensions",
    )


async def embed(
    dataplane: DataPlane, served: ServedModel, texts: list[str], dimensions: int | None = None
) -> Embeddings:
    """Embed ``texts`` with ``served`` (from :func:`text_model`), through the batcher like any request.

    Raises:
        EmbeddingRequestError: no texts, a text over the model's maximum length (``param`` "input"), or
            ``dimensions`` the model does not allow.
        ServingError: what any inference can raise (a bad text element: 400; queue full: 503; timeout: 504).
    """
    if not texts:
        raise EmbeddingRequestError("'input' is empty: give a string or a non-empty list of strings", param="input")
    check_dimensions(served, dimensions)
    spec = served.manifest.inputs[0]
    column = np.empty(len(texts), dtype=object)
    column[:] = texts
    if len(spec.shape) == 2:  # [-1, 1]: one text per row
        column = column.reshape(-1, 1)
    output = served.manifest.outputs[0].name
    result = await dataplane.run_arrays(served, {spec.name: column}, [output])
    tokens = [int(t) for t in result.side[TOKENS]]
    limit = served.manifest.tokenizer.max_length if served.manifest.tokenizer else None
    over = [i for i, n in enumerate(tokens) if limit is not None and n > limit]
    if over:
        i = over[0]
        raise EmbeddingRequestError(
            f"input[{i}] is {tokens[i]} tokens long; model '{served.name}' takes at most {limit} tokens per "
            f"input ({len(over)} of {len(texts)} inputs are too long): shorten or split them",
            param="input",
            code="context_length_exceeded",
        )
    vectors = np.asarray(result.outputs[output], dtype=np.float32).reshape(len(texts), -1)
    if dimensions is not None and dimensions != vectors.shape[1]:
        vectors = shorten(vectors, dimensions)
    return Embeddings(result.served, vectors, tokens)


def shorten(vectors: np.ndarray, dimensions: int) -> np.ndarray:
    """The first ``dimensions`` values of each row, rescaled to unit length (a zero row stays zero)."""
    cut = vectors[:, :dimensions]
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    return (cut / np.where(norms == 0, 1, norms)).astype(np.float32)
