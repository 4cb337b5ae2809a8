"""Triton's model repository extension: index, load, unload. Off unless ``repository_api`` is set."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from modelpress.serving.errors import ForbiddenError
from modelpress.serving.protocol.types import RepositoryIndexEntry, RepositoryIndexRequest
from modelpress.serving.rest.body import parse_json_model, read_body, require_json
from modelpress.serving.rest.common import dataplane_of, errors, json_response
from modelpress.serving.rest.guard import valid_path_names

router = APIRouter(tags=["repository"], dependencies=[Depends(valid_path_names)])


def _enabled(request: Request) -> None:
    if not request.app.state.settings.repository_api:
        raise ForbiddenError("the repository API is disabled (start with MODELPRESS_REPOSITORY_API=true to enable it)")


async def _optional_json(request: Request) -> bytes:
    body = await read_body(request, dataplane_of(request).settings.max_body_bytes)
    if body.strip():
        require_json(request)
    return body


@router.post("/v2/repository/index", response_model=list[RepositoryIndexEntry], responses=errors(400, 403, 415))
async def index(request: Request) -> Response:
    """Every version on disk with its state (READY / UNAVAILABLE and why)."""
    _enabled(request)
    body = await _optional_json(request)
    ready_only = parse_json_model(RepositoryIndexRequest, body, "index request").ready if body.strip() else False
    entries = [e.model_dump() for e in dataplane_of(request).repository.index() if not ready_only or e.state == "READY"]
    return json_response(entries)


@router.post("/v2/repository/models/{model_name}/load", responses=errors(400, 403, 404, 415))
async def load(request: Request, model_name: str) -> Response:
    """Load the latest version: verify, warm up, swap in atomically, drain the old one.

    On failure the old version keeps serving and the 400 says why.
    """
    _enabled(request)
    await _optional_json(request)
    served = await dataplane_of(request).repository.load(model_name)
    return json_response({"name": served.name, "version": served.version, "state": "READY"})


@router.post("/v2/repository/models/{model_name}/unload", responses=errors(403, 404, 415))
async def unload(request: Request, model_name: str) -> Response:
    _enabled(request)
    await _optional_json(request)
    await dataplane_of(request).repository.unload(model_name)
    return json_response({"name": model_name, "state": "UNAVAILABLE"})
