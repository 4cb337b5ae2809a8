import dataclasses

import pytest

from modelpress.export.api import export_checkpoint
from modelpress.export.errors import AccuracyRefusedError, VerificationError
from modelpress.export.spec import VerifySpec
from modelpress.export.verify import judge


@pytest.fixture
def miscalibrated(checkpoint_for):
    """The cnn with calibration inputs shrunk 100×: static int8 then clips real activations and loses accuracy."""
    checkpoint, data = checkpoint_for("cnn")
    return checkpoint, dataclasses.replace(data, calibration=data.calibration * 0.01)


def test_a_variant_beyond_the_tolerance_is_refused_with_both_figures(miscalibrated, tmp_path):
    checkpoint, data = miscalibrated
    repo = tmp_path / "repo"
    with pytest.raises(AccuracyRefusedError) as info:
        export_checkpoint(checkpoint, repo, "digits", variants=["fp32", "int8"], data=data, progress=False)
    message = str(info.value)
    assert message.startswith("digits-int8 refused: accuracy ")
    assert "vs PyTorch" in message
    assert "exceeds the tolerance of 0.50" in message
    assert "--force" in message
    assert not repo.exists() or not any(repo.iterdir())  # the fp32 variant was not published either


def test_force_publishes_it_and_records_why(miscalibrated, tmp_path):
    checkpoint, data = miscalibrated
    (item,) = export_checkpoint(checkpoint, tmp_path, "digits", variants=["int8"], data=data, progress=False,
                                force=True)  # fmt: skip
    quality = item.manifest.quality
    assert quality["accuracy_drop"] > 0.005
    assert quality["forced"]
    assert "exceeds the tolerance" in quality["forced"][0]


def test_judge_thresholds():
    spec = VerifySpec(fp32_atol=1e-4, min_agreement=0.99, max_accuracy_drop=0.005)
    good = {"max_abs_diff": 5e-5, "accuracy": 0.95, "reference_accuracy": 0.953, "accuracy_drop": 0.003,
            "top1_agreement": 0.995}  # fmt: skip
    assert judge("m", "fp32", good, spec, force=False) == []
    with pytest.raises(VerificationError, match=r"differ from PyTorch by up to 0\.001"):
        judge("m", "fp32", {**good, "max_abs_diff": 1e-3}, spec, force=True)  # never forceable for fp32
    assert judge("m-int8", "int8", {**good, "max_abs_diff": 3.0}, spec, force=False) == []
    with pytest.raises(AccuracyRefusedError, match=r"agreement with PyTorch 98\.00% is below 99\.00%"):
        judge("m-int8", "int8", {**good, "top1_agreement": 0.98}, spec, force=False)
