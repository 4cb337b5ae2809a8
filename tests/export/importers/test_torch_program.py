"""PyTorch programs (torch.export .pt2, TorchScript .pt) → import → fp16/int8 → served answers equal eager's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from modelpress.export.importers import InputSignature
from modelpress.export.importers.api import ImportRequest, import_model
from modelpress.serving.manifest import read_manifest
from tests.export.importers.helpers import small_cnn, v2_infer

pytestmark = pytest.mark.anyio


@pytest.mark.slow
async def test_exported_program_with_dynamic_batch(tmp_path: Path) -> None:
    module = small_cnn()
    program = torch.export.export(module, (torch.randn(2, 3, 16, 16),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))  # fmt: skip
    torch.export.save(program, tmp_path / "cnn.pt2")
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "calib.npz", rng.standard_normal((32, 3, 16, 16)).astype(np.float32))
    repo = tmp_path / "repo"
    published = import_model(
        ImportRequest(tmp_path / "cnn.pt2", repo, "cnn", variants=["fp32", "fp16", "int8"],
                      calibration=tmp_path / "calib.npz", force=True),
        progress=False,
    )  # fmt: skip
    fp32 = read_manifest(published[0].path)
    assert fp32.lineage[0].config["kind"] == "torch.export"
    assert fp32.inputs[0].shape == [-1, 3, 16, 16]
    assert fp32.size.parameters == sum(p.numel() for p in module.parameters())
    x = rng.standard_normal((5, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    got = await v2_infer(repo, "cnn", {fp32.inputs[0].name: x})
    np.testing.assert_allclose(got[fp32.outputs[0].name], want, atol=1e-4)
    assert read_manifest(published[2].path).lineage[-1].details["mode"] == "static"


async def test_torchscript_needs_and_takes_an_input_shape(tmp_path: Path) -> None:
    module = small_cnn(seed=3)
    torch.jit.save(torch.jit.trace(module, torch.randn(2, 3, 16, 16)), tmp_path / "cnn.pt")
    repo = tmp_path / "repo"
    published = import_model(
        ImportRequest(tmp_path / "cnn.pt", repo, "ts", variants=["fp32", "fp16"],
                      signature=InputSignature.parse("3,16,16")),
        progress=False,
    )  # fmt: skip
    manifest = read_manifest(published[1].path)
    assert manifest.lineage[0].config["kind"] == "torchscript"
    assert manifest.quality["compared_on"] == "synthetic inputs"
    x = np.random.default_rng(2).standard_normal((3, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    got = await v2_infer(repo, "ts-fp16", {"input": x})
    assert np.max(np.abs(got[manifest.outputs[0].name] - want)) <= 0.05
