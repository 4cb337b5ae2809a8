"""Reading request bodies: size limit (413), content type (415), JSON (400), binary tensor extension."""

from __future__ import annotations

import zlib
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from modelpress.serving.errors import BadRequestError, PayloadTooLargeError, UnsupportedMediaTypeError
from modelpress.serving.protocol.codec import HEADER_LENGTH, split_binary
from modelpress.serving.protocol.types import InferenceRequest

M = TypeVar("M", bound=BaseModel)

JSON_TYPES = ("application/json", "")
BINARY_TYPES = ("application/octet-stream", "application/vnd.sagemaker-triton.binary+json", *JSON_TYPES)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) as soon as it is known to exceed ``limit`` bytes; gzip/deflate decoded."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequestError(f"Content-Length must be a number of bytes, got {declared!r}")
        if int(declared) > limit:
            raise PayloadTooLargeError(f"body of {declared} bytes exceeds the limit of {limit} bytes (max_body_bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"body exceeds the limit of {limit} bytes (max_body_bytes)")
        chunks.append(chunk)
    return _decompress(b"".join(chunks), request.headers.get("content-encoding", "identity").lower(), limit)


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    if encoding in ("identity", ""):
        return body
    if encoding not in ("gzip", "deflate"):
        raise UnsupportedMediaTypeError(
            f"Content-Encoding {encoding!r} is not supported (expected gzip, deflate or none)"
        )
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)  # bounded: a small bomb must not expand past the limit
    except zlib.error as e:
        raise BadRequestError(f"body is not valid {encoding} data: {e}") from e
    if len(out) > limit:
        raise PayloadTooLargeError(f"decompressed body exceeds the limit of {limit} bytes (max_body_bytes)")
    return out


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def require_json(request: Request) -> None:
    got = media_type(request)
    if got not in JSON_TYPES:
        raise UnsupportedMediaTypeError(
            f"expected Content-Type application/json, got {got!r} (with curl: -H 'Content-Type: application/json')"
        )


def parse_json_model(model: type[M], raw: bytes, what: str) -> M:
    """Validate ``raw`` JSON into ``model``; a malformed or mis-shaped body is a 400 naming the first problem."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as e:
        first = e.errors()[0]
        if first["type"] == "json_invalid":
            raise BadRequestError(f"malformed JSON in {what}: {first['msg'].removeprefix('Invalid JSON: ')}") from e
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise BadRequestError(f"invalid {what} at '{where}': {first['msg']}") from e


async def read_infer_request(request: Request, limit: int) -> tuple[InferenceRequest, dict[str, memoryview]]:
    """A V2 inference request, JSON or with the binary tensor extension; returns it and the binary chunks."""
    header = request.headers.get(HEADER_LENGTH)
    got = media_type(request)
    if header is None:
        require_json(request)
    elif got not in BINARY_TYPES:
        raise UnsupportedMediaTypeError(
            f"expected Content-Type application/octet-stream or none with {HEADER_LENGTH}, got {got!r}"
        )
    body = await read_body(request, limit)
    if header is None:
        return parse_json_model(InferenceRequest, body, "inference request"), {}
    if not header.isdigit() or int(header) > len(body):
        raise BadRequestError(f"{HEADER_LENGTH} is {header!r} but the body has {len(body)} bytes")
    view = memoryview(body)
    json_len = int(header)
    parsed = parse_json_model(InferenceRequest, bytes(view[:json_len]), "inference request header")
    return parsed, split_binary(parsed.inputs, view[json_len:])
