"""KServe V1 ``POST /v1/models/{name}:explain``: occlusion attributions (``serving/explain.py``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from modelpress.serving.accounting import Tracked
from modelpress.serving.explain import Explainer
from modelpress.serving.limits import check_rows
from modelpress.serving.protocol.types import PredictRequest
from modelpress.serving.rest.body import parse_json_model, read_body, require_json
from modelpress.serving.rest.common import dataplane_of, errors, json_response
from modelpress.serving.rest.guard import valid_path_names

router = APIRouter(tags=["v1"], dependencies=[Depends(valid_path_names)])

# Explanations are counted in the request metrics under their own protocol label, so their cost (one request
# runs up to explain_max_evaluations rows) does not blur the latency figures of :predict.
PROTOCOL = "explain"


@router.post(
    "/v1/models/{model_name}:explain",
    responses=errors(400, 404, 413, 415, 500, 503, 504),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}},
        }
    },
)
async def explain(request: Request, model_name: str) -> Response:
    """``{"instances": [...]}`` → ``{"explanations": [{"attributions": [...], ...}]}``, one per instance.

    Classifiers: ``attributions`` is shaped like the instance (one value per feature: how much the predicted
    class's probability drops when that feature is set to the training mean), with ``target`` and
    ``probability``. Text models: ``tokens`` (words and punctuation) and one attribution per token (``1 -
    cosine`` between the text's embedding and the embedding without it; null when nothing would be left).
    One request runs at most ``explain_max_evaluations`` model rows; beyond that features are occluded in
    contiguous groups (``group_size``).
    """
    dataplane = dataplane_of(request)
    with Tracked(dataplane, model_name, PROTOCOL) as track:
        require_json(request)
        body = await read_body(request, dataplane.settings.max_body_bytes)
        parsed = parse_json_model(PredictRequest, body, "explain request")
        check_rows(len(parsed.instances), dataplane.settings, "instances")
        explainer = Explainer(dataplane, dataplane.settings.explain_max_evaluations)
        result = await explainer.explain(model_name, None, parsed.instances)
        track.served, track.rows = result.served, result.model_rows
        return json_response({"explanations": result.explanations})
