"""What a user would write without modelpress: FastAPI + PyTorch eager, one forward pass per request.

A pydantic body, ``torch.no_grad`` and the model from a modelpress checkpoint; nothing else.
Run: ``python -m benchmarks.baselines.naive_torch_server CHECKPOINT --port 8002``.
It answers ``POST /v2/models/{model}/infer`` with V2 JSON too, so the same payloads drive every server.
"""

from __future__ import annotations

import argparse
from pathlib import Path
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


def create_app(checkpoint: Path, threads: int) -> FastAPI:
    import torch

    from training.checkpoint import load_checkpoint

    torch.set_num_threads(threads)
    model, _ = load_checkpoint(checkpoint)
    app = FastAPI(title="naive PyTorch server")

    @app.get("/v2/health/ready")
    def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/v2/models/{name}/infer")
    def infer(name: str, request: V2Request) -> dict[str, Any]:
        tensor = request.inputs[0]
        x = torch.tensor(tensor.data, dtype=torch.float32).reshape(tensor.shape)
        with torch.no_grad():
            logits = model(x)
        return {
            "model_name": name,
            "outputs": [{"name": "logits", "shape": list(logits.shape), "datatype": "FP32",
                         "data": logits.flatten().tolist()}],
        }  # fmt: skip

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    app = create_app(args.checkpoint, args.threads)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
