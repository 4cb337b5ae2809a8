"""What a user would write to serve MiniLM without modelpress: FastAPI + transformers + PyTorch eager fp32.

A pydantic body, the Hugging Face tokenizer and model loaded from the packaged MiniLM (or a local folder),
mean pooling and L2 normalisation, one forward pass per request under ``torch.no_grad``; nothing else.
It answers ``POST /v2/models/{model}/infer`` with a V2 JSON BYTES input of texts, so the same payloads drive
our server and this one. Run: ``python -m modelpress.benchmarks.baselines.naive_text_server --port 8003``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from modelpress.benchmarks.baselines.v2 import V2Request, base_app, serve, v2_response


def create_app(source: str, threads: int) -> FastAPI:
    import torch

    from modelpress.training.text.source import offline, resolve_source

    offline()  # before transformers is imported: nothing may come from a hub
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(threads)
    folder = resolve_source(source)
    tokenizer = AutoTokenizer.from_pretrained(str(folder.folder), local_files_only=True)
    model = AutoModel.from_pretrained(str(folder.folder), local_files_only=True).eval()
    app = base_app("naive PyTorch text server")

    @app.post("/v2/models/{name}/infer")
    def infer(name: str, request: V2Request) -> dict[str, Any]:
        texts = [str(t) for t in request.inputs[0].data]
        batch = tokenizer(texts, padding=True, truncation=True, max_length=folder.max_length, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        embedding = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
        return v2_response(name, "embedding", embedding)

    return app


def main() -> None:
    from modelpress.training.text.source import PACKAGED_MINILM

    serve(__doc__, 8003, lambda p: p.add_argument("--source", default=PACKAGED_MINILM, help="Package or folder."),
          lambda args: create_app(args.source, args.threads))  # fmt: skip


if __name__ == "__main__":
    main()
