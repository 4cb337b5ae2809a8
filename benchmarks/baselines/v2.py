"""What the naive baselines share: the V2 JSON body as a pydantic model, the V2 answer, the command line.

Kept deliberately plain (a pydantic dict body, ``tolist()`` answers): it is what a user would write.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel


class V2Input(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class V2Request(BaseModel):
    inputs: list[V2Input]


def base_app(title: str) -> FastAPI:
    """A FastAPI app that answers ``GET /v2/health/ready`` (what the benchmark waits for)."""
    app = FastAPI(title=title)

    @app.get("/v2/health/ready")
    def ready() -> dict[str, bool]:
        return {"ready": True}

    return app


def v2_response(model: str, output: str, tensor: Any) -> dict[str, Any]:
    """A V2 JSON answer with one FP32 output from a torch tensor."""
    return {"model_name": model, "outputs": [{"name": output, "shape": list(tensor.shape), "datatype": "FP32",
                                              "data": tensor.flatten().tolist()}]}  # fmt: skip


def serve(doc: str, port: int, add_args: Callable[[argparse.ArgumentParser], None],
          make_app: Callable[[argparse.Namespace], FastAPI]) -> None:  # fmt: skip
    """Parse ``--host --port --threads`` plus ``add_args``'s, build the app, run one uvicorn worker."""
    import uvicorn

    parser = argparse.ArgumentParser(description=doc)
    add_args(parser)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    uvicorn.run(make_app(args), host=args.host, port=args.port, log_level="warning", access_log=False)
