"""Shared by the import tests: a small CNN exported by torch.onnx, and V2 answers from an in-process server."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.serving.conftest import client_for


def small_cnn(seed: int = 0):
    """A conv net with batch norm and a linear head (random init), in eval mode."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    ).eval()  # fmt: skip


def cnn_onnx(path: Path) -> tuple[Path, object]:
    """``small_cnn`` exported with torch.onnx (TorchScript exporter, dynamic batch); returns the path and module."""
    import torch

    module = small_cnn()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(module, (torch.randn(2, 3, 16, 16),), str(path), dynamo=False, input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}},
                      opset_version=17)  # fmt: skip
    return path, module


async def v2_infer(repository: Path, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Start the server in-process on ``repository`` and return ``model``'s V2 outputs as arrays."""
    from modelpress.serving.protocol.datatypes import V2_TO_NUMPY, numpy_to_v2

    body = {
        "inputs": [
            {"name": n, "datatype": numpy_to_v2(a.dtype), "shape": list(a.shape),
             "data": [str(v) for v in a.ravel()] if a.dtype.kind in "OU" else a.ravel().tolist()}
            for n, a in inputs.items()
        ]
    }  # fmt: skip
    async with client_for(repository) as client:
        response = await client.post(f"/v2/models/{model}/infer", json=body)
        assert response.status_code == 200, response.text
    return {
        o["name"]: np.asarray(o["data"], dtype=V2_TO_NUMPY[o["datatype"]]).reshape(o["shape"])
        for o in response.json()["outputs"]
    }


def two_input_onnx(path: Path) -> Path:
    """A conv branch on ``image`` plus a linear branch on ``extra`` (4 features), summed into ``logits``."""
    import torch
    from torch import nn

    class TwoInputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.image = small_cnn()
            self.extra = nn.Linear(4, 10)

        def forward(self, image: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
            return self.image(image) + self.extra(extra)

    torch.manual_seed(1)
    module = TwoInputs().eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(module, (torch.randn(2, 3, 16, 16), torch.randn(2, 4)), str(path), dynamo=False,
                      input_names=["image", "extra"], output_names=["logits"],
                      dynamic_axes={"image": {0: "n"}, "extra": {0: "n"}, "logits": {0: "n"}},
                      opset_version=17)  # fmt: skip
    return path
