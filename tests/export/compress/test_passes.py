import onnx
import pytest

from modelpress.export.api import export_checkpoint
from modelpress.export.errors import ExportError
from modelpress.export.spec import parse_spec
from modelpress.serving.manifest import read_manifest, verify_files
from tests.export.tiny_checkpoints import train_checkpoint

ONNX = {"pass": "onnx", "exporter": "torchscript"}  # the faster exporter: these tests are about compression
STEPS = {
    "student": [
        {"pass": "distill", "config": {"hidden": [4], "dropout": 0.0}, "epochs": 2, "temperature": 2.0},
        ONNX,
    ],
    "student-int8": [
        {"pass": "distill", "config": {"hidden": [4], "dropout": 0.0}, "epochs": 2, "temperature": 2.0},
        ONNX,
        {"pass": "quantize", "mode": "dynamic"},
    ],
    # two students, images rotated and zoomed for the teacher to label; the one closest to the teacher is kept
    "student-picked": [
        {
            "pass": "distill",
            "config": {"hidden": [4], "dropout": 0.0},
            "epochs": 2,
            "keep_last": True,
            "candidates": 2,
            "rotate": 5.0,
            "scale": 0.05,
        },
        ONNX,
    ],
    "sparse": [
        {"pass": "prune", "sparsity": 0.8, "steps": [0.5], "finetune_epochs": 1},
        ONNX,
    ],
    "slim": [
        {"pass": "prune-structured", "ratio": 0.6, "iterative_steps": 1, "finetune_epochs": 1},
        ONNX,
    ],
}


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("compress-export")
    checkpoint, data = train_checkpoint("mlp", root / "checkpoint", epochs=3)
    spec = {"variants": ["fp32", *STEPS], "steps": STEPS}
    items = export_checkpoint(checkpoint, root / "repo", "digits", spec=spec, force=True, data=data, progress=False)
    return checkpoint, {p.name: p for p in items}


@pytest.mark.slow
def test_compressed_variants_are_published_as_their_own_models_of_the_family(published):
    checkpoint, items = published
    assert set(items) == {"digits", "digits-student", "digits-student-int8", "digits-student-picked",
                          "digits-sparse", "digits-slim"}  # fmt: skip
    for item in items.values():
        manifest = read_manifest(item.path)
        verify_files(manifest, item.path)
        assert manifest.source["family"] == "digits"
        # the PyTorch baseline of every variant is the original checkpoint
        assert manifest.source["checkpoint"] == str(checkpoint.resolve())
    lineage = {name: [step.name for step in item.manifest.lineage] for name, item in items.items()}
    assert lineage["digits-student-int8"] == ["train", "distill", "onnx", "quantize"]
    assert lineage["digits-slim"] == ["train", "prune-structured", "onnx"]
    assert items["digits-student-int8"].manifest.precision == "int8"


@pytest.mark.slow
def test_distill_keeps_the_student_closest_to_the_teacher_and_records_every_try(published):
    _, items = published
    details = read_manifest(items["digits-student-picked"].path).lineage[1].details
    tried = details["candidates"]
    assert [t["seed"] for t in tried] == [0, 1]
    assert all(t["probe_kl"] > 0 and 0 <= t["probe_agree"] <= 1 for t in tried)
    assert details["chosen_seed"] == min(tried, key=lambda t: t["probe_kl"])["seed"]
    assert details["probe_samples"] == 41 * 270  # validation images, 20 noisy copies, 20 mixtures
    assert all(t["kept_epoch"] == t["epochs_run"] == 2 for t in tried)  # keep_last: the schedule's last epoch
    # a single student records no selection
    assert "candidates" not in read_manifest(items["digits-student"].path).lineage[1].details


@pytest.mark.slow
def test_sizes_show_what_each_compression_saved(published):
    _, items = published
    size = {name: item.manifest.size for name, item in items.items()}
    base = size["digits"]
    # a distilled student is a different, much smaller model
    assert size["digits-student"].parameters < base.parameters / 5
    assert size["digits-student"].onnx_bytes < base.onnx_bytes / 3
    # unstructured sparsity: same dense bytes and parameter count, fewer nonzeros, smaller gzip
    assert size["digits-sparse"].parameters == base.parameters
    assert size["digits-sparse"].nonzero_parameters < 0.3 * base.parameters
    assert size["digits-sparse"].onnx_bytes > 0.9 * base.onnx_bytes
    assert size["digits-sparse"].gzip_bytes < 0.6 * base.gzip_bytes
    # structured pruning: the graph itself is smaller
    assert size["digits-slim"].parameters < 0.5 * base.parameters
    assert size["digits-slim"].onnx_bytes < 0.5 * base.onnx_bytes


@pytest.mark.slow
def test_no_pruning_mask_reaches_the_onnx_graph(published):
    _, items = published
    graph = onnx.load(str(items["digits-sparse"].path / "model.onnx")).graph
    names = [t.name for t in graph.initializer] + [i.name for i in graph.input]
    assert not any(n.endswith(("_orig", "_mask")) for n in names)


@pytest.mark.slow
def test_quality_is_judged_against_the_original_checkpoint(published):
    _, items = published
    base = items["digits"].manifest.quality
    student = items["digits-student"].manifest.quality
    assert student["reference_accuracy"] == pytest.approx(base["accuracy"])
    assert student["accuracy_drop"] == pytest.approx(base["accuracy"] - student["accuracy"])
    # the fp32 conversion of the student is exact against the student itself
    assert student["max_abs_diff"] < 1e-4
    assert student["conversion_agreement"] == 1.0
    # a student with 4 hidden units trained 2 epochs disagrees with its teacher somewhere
    assert student["top1_agreement"] < 1.0


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([ONNX, {"pass": "prune"}], "first step must be {pass: onnx}"),
        ([{"pass": "distill"}], "first step must be {pass: onnx}"),
        ([{"pass": "prune", "sparsity": 1.2}, ONNX], "sparsity"),
        ([{"pass": "distill", "student": "mlp"}, ONNX], "student"),
    ],
)
def test_bad_compression_steps_are_refused_before_any_work(steps, message):
    with pytest.raises(ExportError, match=message):
        parse_spec({"variants": ["x"], "steps": {"x": steps}})
