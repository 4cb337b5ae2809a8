"""What a user would write without modelpress: FastAPI + PyTorch eager, one forward pass per request.

A pydantic body, ``torch.no_grad`` and the model from a modelpress checkpoint; nothing else.
Run: ``python -m modelpress.benchmarks.baselines.naive_torch_server CHECKPOINT --port 8002``.
It answers ``POST /v2/models/{model}/infer`` with V2 JSON too, so the same payloads drive every server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI

from modelpress.benchmarks.baselines.v2 import V2Request, base_app, serve, v2_response


def create_app(checkpoint: Path, threads: int) -> FastAPI:
    import torch

    from modelpress.training.checkpoint import load_checkpoint

    torch.set_num_threads(threads)
    model, _ = load_checkpoint(checkpoint)
    app = base_app("naive PyTorch server")

    @app.post("/v2/models/{name}/infer")
    def infer(name: str, request: V2Request) -> dict[str, Any]:
        tensor = request.inputs[0]
        x = torch.tensor(tensor.data, dtype=torch.float32).reshape(tensor.shape)
        with torch.no_grad():
            logits = model(x)
        return v2_response(name, "logits", logits)

    return app


def main() -> None:
    serve(__doc__, 8002, lambda p: p.add_argument("checkpoint", type=Path),
          lambda args: create_app(args.checkpoint, args.threads))  # fmt: skip


if __name__ == "__main__":
    main()
