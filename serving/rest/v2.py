"""Open Inference Protocol (KServe V2) REST routes: health, metadata, infer, statistics."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from modelpress.serving.accounting import Tracked
from modelpress.serving.dataplane import DataPlane, Inference
from modelpress.serving.errors import UnavailableError
from modelpress.serving.limits import check_infer_limits
from modelpress.serving.protocol.codec import HEADER_LENGTH, encode_binary, encode_json, output_datatype
from modelpress.serving.protocol.model_config import ModelConfig
from modelpress.serving.protocol.types import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ModelStatisticsResponse,
    ServerMetadata,
)
from modelpress.serving.rest.body import read_infer_request
from modelpress.serving.rest.common import dataplane_of, dumps, errors, json_response
from modelpress.serving.rest.guard import valid_path_names

router = APIRouter(tags=["v2"], dependencies=[Depends(valid_path_names)])

_INFER_BODY = {
    "requestBody": {
        "required": True,
        "description": "A JSON inference request, or with the binary tensor extension: the JSON header "
        f"(its length in the {HEADER_LENGTH} header) followed by the tensors' bytes.",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.get("/v2/health/live", responses=errors(503))
async def live() -> dict:
    """200 while the process is up."""
    return {"live": True}


@router.get("/v2/health/ready", responses=errors(503))
async def ready(request: Request) -> dict:
    """200 once models serve (all of them with strict readiness); 503 before, with no model served, or draining."""
    if not dataplane_of(request).ready():
        raise UnavailableError("not ready: models are loading, the repository is empty or a model failed, or draining")
    return {"ready": True}


@router.get("/v2", response_model=ServerMetadata)
async def server_metadata(request: Request) -> Response:
    return json_response(dataplane_of(request).server_metadata().model_dump())


@router.get("/v2/models/stats", response_model=ModelStatisticsResponse)
async def all_stats(request: Request) -> Response:
    """Statistics of every served model (declared before ``/v2/models/{model_name}``, as in Triton)."""
    return json_response(dataplane_of(request).statistics(None).model_dump())


@router.get("/v2/models/{model_name}", response_model=ModelMetadata, responses=errors(404))
async def model_metadata(request: Request, model_name: str) -> Response:
    return json_response(dataplane_of(request).model_metadata(model_name).model_dump())


@router.get("/v2/models/{model_name}/versions/{model_version}", response_model=ModelMetadata, responses=errors(404))
async def model_version_metadata(request: Request, model_name: str, model_version: str) -> Response:
    return json_response(dataplane_of(request).model_metadata(model_name, model_version).model_dump())


@router.get("/v2/models/{model_name}/config", response_model=ModelConfig, responses=errors(404))
async def model_config(request: Request, model_name: str) -> Response:
    """Triton's model configuration extension (``perf_analyzer`` and ``tritonclient.get_model_config`` read it)."""
    return json_response(dataplane_of(request).model_config(model_name).model_dump(exclude_none=True))


@router.get("/v2/models/{model_name}/versions/{model_version}/config", response_model=ModelConfig,
            responses=errors(404))  # fmt: skip
async def model_version_config(request: Request, model_name: str, model_version: str) -> Response:
    return json_response(dataplane_of(request).model_config(model_name, model_version).model_dump(exclude_none=True))


@router.get("/v2/models/{model_name}/ready", responses=errors(404, 503))
async def model_ready(request: Request, model_name: str) -> dict:
    return _ready(request, model_name, None)


@router.get("/v2/models/{model_name}/versions/{model_version}/ready", responses=errors(404, 503))
async def model_version_ready(request: Request, model_name: str, model_version: str) -> dict:
    return _ready(request, model_name, model_version)


def _ready(request: Request, name: str, version: str | None) -> dict:
    if not dataplane_of(request).model_ready(name, version):
        raise UnavailableError(f"model '{name}' is not ready")
    return {"name": name, "ready": True}


@router.get("/v2/models/{model_name}/stats", response_model=ModelStatisticsResponse, responses=errors(404))
async def model_stats(request: Request, model_name: str) -> Response:
    return json_response(dataplane_of(request).statistics(model_name).model_dump())


@router.get(
    "/v2/models/{model_name}/versions/{model_version}/stats",
    response_model=ModelStatisticsResponse,
    responses=errors(404),
)
async def model_version_stats(request: Request, model_name: str, model_version: str) -> Response:
    return json_response(dataplane_of(request).statistics(model_name, model_version).model_dump())


_INFER_ERRORS = {
    200: {
        "description": f"JSON, or with binary outputs the JSON header ({HEADER_LENGTH} bytes) then the tensors",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    },
    **errors(400, 404, 413, 415, 500, 503, 504),
}


@router.post(
    "/v2/models/{model_name}/infer",
    response_model=InferenceResponse,
    responses=_INFER_ERRORS,
    openapi_extra=_INFER_BODY,
)
async def infer(request: Request, model_name: str) -> Response:
    """Run an inference; outputs with ``parameters.binary_data`` come back as binary after the JSON header."""
    return await infer_response(dataplane_of(request), request, model_name, None)


@router.post(
    "/v2/models/{model_name}/versions/{model_version}/infer",
    response_model=InferenceResponse,
    responses=_INFER_ERRORS,
    openapi_extra=_INFER_BODY,
)
async def infer_version(request: Request, model_name: str, model_version: str) -> Response:
    return await infer_response(dataplane_of(request), request, model_name, model_version)


async def infer_response(dataplane: DataPlane, request: Request, name: str, version: str | None) -> Response:
    """The inference itself, from the request's body to the response; FastAPI's routes and the fast path call it.

    Raises:
        ServingError: the request is refused or failed (the caller turns it into the JSON error answer).
    """
    with Tracked(dataplane, name, "v2", request.headers) as track:
        parsed, binary = await read_infer_request(request, dataplane.settings.max_body_bytes)
        check_infer_limits(parsed, dataplane.settings)
        result = await dataplane.infer(name, version, parsed, binary)
        track.served, track.rows = result.served, result.rows
        return _response(parsed, result)


def _response(parsed: InferenceRequest, result: Inference) -> Response:
    # Binary per output (parameters.binary_data), else the request-wide binary_data_output, else JSON.
    default = bool((parsed.parameters or {}).get("binary_data_output", False))
    wants = {o.name: bool((o.parameters or {}).get("binary_data", default)) for o in parsed.outputs or []}
    outputs, chunks = [], []
    for name, arr in result.outputs.items():
        entry: dict = {"name": name, "datatype": output_datatype(arr), "shape": list(arr.shape)}
        if wants.get(name, default):
            raw = encode_binary(arr)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = encode_json(arr)
        outputs.append(entry)
    payload: dict = {"model_name": result.served.name, "model_version": result.served.version, "outputs": outputs}
    if parsed.id is not None:
        payload["id"] = parsed.id
    parameters = {**(parsed.parameters or {}), **result.parameters}
    if parameters:
        payload["parameters"] = parameters
    if not chunks:
        return json_response(payload)
    header = dumps(payload)
    return Response(
        header + b"".join(chunks),
        media_type="application/octet-stream",
        headers={HEADER_LENGTH: str(len(header))},
    )


# FastAPI tries routes in order, a few µs each: inference, the hot path, is matched first. Stable, so the
# order among the other routes (``/v2/models/stats`` before ``/v2/models/{model_name}``) is kept.
router.routes.sort(key=lambda route: not getattr(route, "path", "").endswith("/infer"))
