"""OpenAI-compatible routes: ``POST /v1/embeddings`` and ``GET /v1/models``, so the ``openai`` client works as is.

``openai.OpenAI(base_url="http://HOST:PORT/v1", api_key=TOKEN).embeddings.create(model=..., input=[...])``: the
client's API key arrives as ``Authorization: Bearer``, which is the server's own bearer auth. Errors answer in
OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, with the HTTP status the server uses
elsewhere (404 unknown model, 400 bad input, 413 too many inputs or too big a body, 503 + Retry-After when the
queue is full).

``GET /v1/models`` and KServe V1's ``GET /v1/models/{name}`` share their paths with OpenAI's list and retrieve:
each answer carries both vocabularies (``models`` / ``name`` + ``ready`` for KServe V1 clients, ``object`` /
``data`` / ``id`` for OpenAI's), so either client reads what it expects.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from modelpress.serving.accounting import Tracked
from modelpress.serving.dataplane import DataPlane
from modelpress.serving.embeddings import EmbeddingRequestError, Embeddings, embed, is_text_embedding, text_model
from modelpress.serving.errors import ServingError, log_unexpected
from modelpress.serving.limits import check_rows
from modelpress.serving.rest.body import parse_json_model, read_body, require_json
from modelpress.serving.rest.common import dataplane_of, json_response
from modelpress.serving.served import ServedModel

router = APIRouter(tags=["openai"])

OWNER = "modelpress"


class EmbeddingRequest(BaseModel):
    """OpenAI's embeddings request; fields this server does not use (``user``...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, description="A served text embedding model.")
    input: str | list[Any] = Field(description="A text or a list of texts (token arrays are not supported).")
    encoding_format: Literal["float", "base64"] = Field(
        default="float", description="Vectors as JSON numbers, or base64 of little-endian float32 bytes."
    )
    dimensions: int | None = Field(default=None, ge=1, description="Shorter vectors, where the model allows it.")


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(BaseModel):
    error: OpenAIErrorBody


_ERRORS = {
    s: {"model": OpenAIError, "description": d}
    for s, d in {
        400: "Bad input: not a text model, empty input, a text over the model's maximum length, unsupported dimensions",
        404: "Unknown model",
        413: "More inputs than max_batch_rows, or a body over max_body_bytes",
        415: "Content-Type is not application/json",
        503: "Not ready, draining, or queue full (Retry-After)",
        504: "No result within request_timeout_s",
    }.items()
}


def error_type(status: int) -> str:
    """OpenAI's error ``type`` for an HTTP status."""
    if status == 401:
        return "authentication_error"
    if status == 404:
        return "invalid_request_error"
    return "invalid_request_error" if status < 500 else "server_error"


def openai_error(status: int, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> Response:  # fmt: skip
    body = {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}
    return json_response(body, status, headers)


def _error_response(e: ServingError) -> Response:
    param = getattr(e, "param", None)
    code = getattr(e, "code", None)
    if e.status == 404:
        param, code = param or "model", code or "model_not_found"
    return openai_error(e.status, e.message, param=param, code=code, headers=e.headers)


def texts_of(value: str | list[Any]) -> list[str]:
    """``input`` as a list of texts.

    Raises:
        EmbeddingRequestError: token arrays or non-string elements, naming the first one.
    """
    if isinstance(value, str):
        return [value]
    for i, item in enumerate(value):
        if not isinstance(item, str):
            kind = "token ids" if isinstance(item, int | list) else type(item).__name__
            raise EmbeddingRequestError(
                f"input[{i}]: expected a string, got {kind} (this server embeds text; send the text itself)",
                param="input",
            )
    return value


def embedding_data(result: Embeddings, encoding: str) -> list[dict[str, Any]]:
    if encoding == "base64":  # what the openai client asks for by default; it decodes little-endian float32
        rows = [base64.b64encode(row.astype("<f4").tobytes()).decode("ascii") for row in result.vectors]
    else:
        rows = result.vectors.tolist()
    return [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)]


@router.post("/v1/embeddings", responses=_ERRORS)
async def embeddings(request: Request) -> Response:
    """OpenAI's ``POST /v1/embeddings`` for the served text models; ``usage`` counts the model's own tokens."""
    return await embeddings_response(dataplane_of(request), request)


async def embeddings_response(dataplane: DataPlane, request: Request) -> Response:
    """Body → embeddings → OpenAI's answer; every refusal in OpenAI's error shape."""
    name = ""
    try:
        require_json(request)
        body = await read_body(request, dataplane.settings.max_body_bytes)
        parsed = parse_json_model(EmbeddingRequest, body, "embeddings request")
        name = parsed.model
        with Tracked(dataplane, name, "openai", request.headers) as track:
            texts = texts_of(parsed.input)
            check_rows(len(texts), dataplane.settings, "input")
            served = text_model(dataplane, name)
            result = await embed(dataplane, served, texts, parsed.dimensions)
            track.served, track.rows = result.served, len(texts)
    except ServingError as e:
        return _error_response(e)
    except Exception as e:  # a bug: logged with its traceback, answered in the client's shape
        log_unexpected(request.scope, e)
        return openai_error(500, f"internal error: {type(e).__name__}")
    usage = {"prompt_tokens": result.total_tokens, "total_tokens": result.total_tokens}
    data = embedding_data(result, parsed.encoding_format)
    return json_response({"object": "list", "data": data, "model": name, "usage": usage})


def model_card(served: ServedModel) -> dict[str, Any]:
    """One served model in OpenAI's ``model`` shape, with KServe V1's ``name`` / ``ready`` beside it."""
    return {
        "id": served.name,
        "object": "model",
        "created": int(served.manifest.created_at.timestamp()),
        "owned_by": OWNER,
        "name": served.name,
        "ready": served.runtime.ready,
        "task": served.manifest.task,
        "embeddings": is_text_embedding(served),
    }


@router.get("/v1/models")
async def list_models(request: Request) -> Response:
    """Every served model: OpenAI's list (``data``) and KServe V1's (``models``, the names)."""
    served = sorted(dataplane_of(request).repository.served(), key=lambda s: s.name)
    cards = [model_card(s) for s in served]
    return json_response({"object": "list", "data": cards, "models": [s.name for s in served]})
