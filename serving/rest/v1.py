"""KServe V1 / TF-Serving style convenience endpoint with server-side preprocessing."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from modelpress.serving.accounting import Tracked
from modelpress.serving.dataplane import DataPlane
from modelpress.serving.errors import UnavailableError
from modelpress.serving.limits import check_rows
from modelpress.serving.protocol.types import PredictRequest, PredictResponse
from modelpress.serving.rest.body import parse_json_model, read_body, require_json
from modelpress.serving.rest.common import dataplane_of, errors, json_response
from modelpress.serving.rest.guard import valid_path_names
from modelpress.serving.rest.openai_compat import model_card

router = APIRouter(tags=["v1"], dependencies=[Depends(valid_path_names)])

_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}},
    }
}


@router.get("/v1/models/{model_name}", responses=errors(404, 503))
async def model_status(request: Request, model_name: str) -> Response:
    """KServe V1 model status: ``{"name": ..., "ready": true}``; 503 while the version is not ready.

    The same path is OpenAI's model retrieve: the answer carries its fields too (``id``, ``object``...).
    """
    dataplane = dataplane_of(request)
    if not dataplane.model_ready(model_name, None):
        raise UnavailableError(f"model '{model_name}' is not ready")
    return json_response(model_card(dataplane.repository.get(model_name)))


@router.post(
    "/v1/models/{model_name}:predict",
    response_model=PredictResponse,
    responses=errors(400, 404, 413, 415, 500, 503, 504),
    openapi_extra=_BODY,
)
async def predict(request: Request, model_name: str) -> Response:
    """``{"instances": [...]}`` → ``{"predictions": [...]}``; raw features are standardized as at training.

    Classifiers answer ``{"label": ..., "probabilities": {label: p}}`` per instance (softmax of ``logits``).
    """
    return await predict_response(dataplane_of(request), request, model_name, None)


async def predict_response(dataplane: DataPlane, request: Request, name: str, version: str | None) -> Response:
    """The prediction itself, from the request's body to the response; FastAPI's route and the fast path call it.

    Raises:
        ServingError: the request is refused or failed (the caller turns it into the JSON error answer).
    """
    with Tracked(dataplane, name, "v1", request.headers) as track:
        require_json(request)
        body = await read_body(request, dataplane.settings.max_body_bytes)
        parsed = parse_json_model(PredictRequest, body, "predict request")
        check_rows(len(parsed.instances), dataplane.settings, "instances")
        done = await dataplane.predict(name, version, parsed.instances)
        track.served, track.rows = done.served, len(parsed.instances)
        parameters = {"parameters": done.parameters} if done.parameters else {}
        return json_response({"predictions": done.predictions, **parameters})
