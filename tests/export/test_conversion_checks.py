import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from modelpress.export.api import export_checkpoint
from modelpress.export.errors import VerificationError
from modelpress.export.passes import to_onnx
from modelpress.export.passes.optimize import OrtOptimize


@pytest.mark.slow
def test_torchscript_exporter_on_request_and_as_fallback(checkpoint_for, tmp_path, monkeypatch):
    checkpoint, data = checkpoint_for("rnn")
    spec = {"steps": {"fp32": [{"pass": "onnx", "exporter": "torchscript"}]}}
    (item,) = export_checkpoint(checkpoint, tmp_path / "a", "rnn", variants=["fp32"], spec=spec, data=data,
                                progress=False)  # fmt: skip
    assert item.manifest.lineage[1].details["exporter"] == "torchscript"
    assert item.manifest.quality["max_abs_diff"] <= 1e-4

    def dynamo_fails(*args, **kwargs):
        raise RuntimeError("unsupported operator aten::gru")

    monkeypatch.setattr(to_onnx, "_export_dynamo", dynamo_fails)
    (item,) = export_checkpoint(checkpoint, tmp_path / "b", "rnn", variants=["fp32"], data=data, progress=False)
    details = item.manifest.lineage[1].details
    assert details["exporter"] == "torchscript"
    assert details["dynamo_error"] == "RuntimeError: unsupported operator aten::gru"
    assert item.manifest.quality["top1_agreement"] == 1.0


def test_a_conversion_that_changes_the_outputs_is_an_error(checkpoint_for, tmp_path, monkeypatch):
    checkpoint, data = checkpoint_for("mlp")
    real_run = OrtOptimize.run

    def corrupting_run(self, model, out_dir, ctx):
        output = real_run(self, model, out_dir, ctx)
        model = onnx.load(str(output.model.path))
        weight = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
        weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 1.01, weight.name))
        onnx.save(model, str(output.model.path))
        return output

    monkeypatch.setattr(OrtOptimize, "run", corrupting_run)
    repo = tmp_path / "repo"
    with pytest.raises(VerificationError, match=r"^digits: ONNX outputs differ from PyTorch by up to .*0\.0001"):
        export_checkpoint(checkpoint, repo, "digits", variants=["fp32"], data=data, progress=False, force=True)
    assert not repo.exists() or not any(repo.iterdir())
