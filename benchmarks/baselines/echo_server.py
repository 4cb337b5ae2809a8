"""The ceiling: a FastAPI endpoint on the same stack (uvicorn, same workers) that only parses and echoes.

Whatever our server does beyond this (decode, validate, batch, run, encode) is what our code costs.
Run: ``python -m modelpress.benchmarks.baselines.echo_server --port 8001``.
"""

from __future__ import annotations

import argparse
import json

from fastapi import FastAPI, Request, Response


def create_app() -> FastAPI:
    app = FastAPI(title="echo ceiling")

    @app.get("/v2/health/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/v2/models/{model}/infer")
    async def infer(model: str, request: Request) -> Response:
        body = json.loads(await request.body())
        return Response(json.dumps({"model_name": model, "outputs": body.get("inputs", [])}),
                        media_type="application/json")  # fmt: skip

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
