from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from modelpress.common.errors import UserError
from modelpress.export.errors import AccuracyRefusedError, ExportError
from modelpress.export.pipeline import run_pipeline
from modelpress.export.sizes import GZIP_LEVEL, gzip_bytes
from modelpress.export.sources import prepare_recipe
from modelpress.serving.manifest import list_models, read_manifest, verify_files
from tests.training.text.tiny_bert import HIDDEN

REPO = Path(__file__).resolve().parents[3]
VARIANTS = ["fp32", "int8", "fp16", "student", "student-int8"]
DISTILL = "export.steps.student.0"  # the distill-encoder step (student-int8 shares it by alias)


# The MiniLM recipe's chains (recipes/minilm.yaml), for a tiny random BERT: the steps as a YAML text, so the
# distill and int8 steps are shared by alias like the real recipe's.
TINY_EXPORT = """
variants: VARIANTS
steps:
  fp32: [&onnx {pass: onnx, exporter: torchscript, opset: 17}, &fuse {pass: fuse-transformer}]
  int8:
    - *onnx
    - &fuse8 {pass: fuse-transformer, embed_layer_norm: false}
    - &int8 {pass: quantize-smooth, smoothing_alphas: [0.7], max_fp32_nodes: 1, probe_nodes: 3}
  fp16: [*onnx, *fuse, {pass: fp16}]
  student:
    - &distill {pass: distill-encoder, layers: [1], epochs: 1, batch_size: 32, lr: 0.001, eval_every: 1}
    - *onnx
    - *fuse
  student-int8: [*distill, *onnx, *fuse8, *int8]
verify:
  # A random tiny BERT is not a real encoder: the floors are for MiniLM, not this test.
  min_mean_cosine: {int8: 0.5, student: 0.0, student-int8: 0.0}
"""


def write_recipe(path: Path, model: Path, corpus: Path, variants: list[str] | None = None) -> Path:
    export = TINY_EXPORT.replace("VARIANTS", yaml.safe_dump(variants or VARIANTS, default_flow_style=True).strip())
    recipe = {
        "name": "tiny",
        "model": {"source": "hf", "path": str(model), "max_length": 12},
        "data": {"corpus": str(corpus), "calibration_size": 24, "max_length": 24},
    }
    path.write_text(yaml.safe_dump(recipe) + "export:\n" + "".join(f"  {line}\n" for line in export.splitlines()))
    return path


@pytest.fixture(scope="module")
def published(tiny_bert: Path, tiny_corpus: Path, tmp_path_factory) -> tuple[Path, Path, list]:
    root = tmp_path_factory.mktemp("text-pipeline")
    recipe = write_recipe(root / "tiny.yaml", tiny_bert, tiny_corpus)
    result = run_pipeline(recipe, root / "repo", workdir=root / "work", progress=False)
    assert result.checkpoint is None  # nothing was trained
    return root / "repo", result.kept["student"], result.published


@pytest.mark.slow
def test_pipeline_publishes_every_variant_with_tokenizer_and_fidelity(published):
    repository, student, items = published
    assert list_models(repository) == sorted(["tiny", "tiny-int8", "tiny-fp16", "tiny-student", "tiny-student-int8"])
    assert student == repository.parent / "work" / "tiny-student"
    assert (student / "config.json").is_file()
    assert (student / "tokenizer.json").is_file()
    for item in items:
        manifest = read_manifest(item.path)
        verify_files(manifest, item.path)
        assert manifest.task == "embedding"
        assert [(s.name, s.datatype, s.shape) for s in manifest.inputs] == [("text", "BYTES", [-1])]
        assert [(s.name, s.datatype, s.shape) for s in manifest.outputs] == [("embedding", "FP32", [-1, HIDDEN])]
        assert manifest.tokenizer is not None
        assert manifest.tokenizer.max_length == 12
        assert "tokenizer.json" in manifest.files
        assert manifest.source["family"] == "tiny"
        assert [g["name"] for g in manifest.graph_inputs] == ["input_ids", "attention_mask"]
        assert {"mean_cosine", "min_cosine", "nn_agreement_at_1"} <= set(manifest.quality)
        assert manifest.size.onnx_bytes == sum(r.bytes for name, r in manifest.files.items() if "onnx" in name)
        # sizes are taken like every other model's: gzip at the one level, parameters of the PyTorch source
        assert manifest.size.model_dump()["gzip_level"] == GZIP_LEVEL
        assert manifest.size.gzip_bytes == gzip_bytes(item.path / manifest.model_file)
        assert manifest.size.parameters > 0
    by_name = {i.name: read_manifest(i.path) for i in items}
    assert by_name["tiny"].quality["mean_cosine"] > 0.9999
    assert by_name["tiny-int8"].precision == "int8"
    steps = [r.name for r in by_name["tiny-student-int8"].lineage]
    assert steps == ["import", "distill-encoder", "onnx", "fuse-transformer", "quantize-smooth"]
    distilled = by_name["tiny-student"].lineage[1].model_dump()["details"]
    # validated on the calibration sentences after every step: a curve in the lineage, ending at the last step
    assert [step for step, _ in distilled["validation_curve"]] == list(range(1, distilled["steps"] + 1))
    fusions = by_name["tiny"].lineage[-1].model_dump()["details"]["fusions"]
    assert fusions["Attention"] == 2
    assert fusions["EmbedLayerNormalization"] == 1


@pytest.mark.slow
def test_published_variants_are_served_as_text_in_embeddings_out(published):
    from tests.serving.conftest import client_for

    repository, _, _ = published
    texts = ["the value of a list", "python " * 20]  # the second is longer than max_length 12

    async def call() -> tuple[dict, dict]:
        async with client_for(repository) as client:
            v2 = await client.post(
                "/v2/models/tiny-int8/infer",
                json={"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": texts}]},
            )
            v1 = await client.post("/v1/models/tiny-student:predict", json={"instances": texts})
            bad = await client.post("/v1/models/tiny:predict", json={"instances": [""]})
            assert bad.status_code == 400
            assert "empty" in bad.json()["error"]
            return v2.json(), v1.json()

    v2, v1 = asyncio.run(call())
    out = np.array(v2["outputs"][0]["data"]).reshape(2, HIDDEN)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)
    assert v2["parameters"]["truncated"] == [1]
    assert np.array(v1["predictions"]).shape == (2, HIDDEN)


@pytest.mark.slow
def test_reuses_a_kept_student_with_its_own_int8_settings(published, tiny_bert, tiny_corpus, tmp_path: Path):
    _, student, items = published
    first = {i.name: read_manifest(i.path) for i in items}
    recipe = write_recipe(tmp_path / "r.yaml", tiny_bert, tiny_corpus, variants=["student", "student-int8"])
    # student-int8's own int8 settings: its chain gets its own quantize-smooth step (the alias is replaced)
    again = run_pipeline(
        recipe, tmp_path / "repo", workdir=tmp_path / "w", progress=False,
        overrides=[f"{DISTILL}.reuse={student}",
                   "export.steps.student-int8.3={pass: quantize-smooth, max_fp32_nodes: 0, smoothing_alphas: [0.7]}"],
    ).published  # fmt: skip
    by_name = {i.name: read_manifest(i.path) for i in again}
    # the same weights, not a new distillation: identical held-out fidelity, and the first run's record
    assert by_name["tiny-student"].quality["mean_cosine"] == pytest.approx(first["tiny-student"].quality["mean_cosine"])
    distilled = by_name["tiny-student"].lineage[1].model_dump()["details"]
    assert distilled["reused"] == str(student.resolve())
    assert distilled["validation_curve"] == first["tiny-student"].lineage[1].model_dump()["details"]["validation_curve"]
    # the student's int8 settings apply to the student only; the teacher keeps export.int8
    student_int8 = by_name["tiny-student-int8"].lineage[-1].model_dump()
    assert student_int8["config"]["max_fp32_nodes"] == 0
    assert student_int8["details"]["kept_fp32"] == []
    assert first["tiny-int8"].lineage[-1].model_dump()["config"]["max_fp32_nodes"] == 1
    with pytest.raises(ExportError, match=r"has 1 layers, layers names 2"):
        run_pipeline(recipe, tmp_path / "repo2", workdir=tmp_path / "w2", progress=False,
                     overrides=[f"{DISTILL}.reuse={student}", f"{DISTILL}.layers=[0, 1]"])  # fmt: skip
    assert list_models(tmp_path / "repo2") == []


@pytest.mark.slow
def test_distils_a_kept_student_further(published, tiny_bert, tiny_corpus, tmp_path: Path):
    _, student, items = published
    first = {i.name: read_manifest(i.path) for i in items}["tiny-student"]
    recipe = write_recipe(tmp_path / "r.yaml", tiny_bert, tiny_corpus, variants=["student"])
    again = run_pipeline(
        recipe, tmp_path / "repo", workdir=tmp_path / "w", progress=False,
        overrides=[f"{DISTILL}.start_from={student}", f"{DISTILL}.max_steps=2"],
    ).published  # fmt: skip
    distilled = read_manifest(again[0].path).lineage[1].model_dump()["details"]
    assert distilled["steps"] == 2
    assert [step for step, _ in distilled["validation_curve"]] == [1, 2]
    # the earlier run's record travels along, and training went on from its weights (not from the teacher's)
    assert distilled["started_from"]["validation_curve"] == first.lineage[1].model_dump()["details"]["validation_curve"]
    assert distilled["validation_curve"][0][1] != pytest.approx(
        first.lineage[1].model_dump()["details"]["validation_curve"][0][1]
    )
    with pytest.raises(ExportError, match=r"reuse .* or start_from"):
        prepare_recipe(recipe, [f"{DISTILL}.reuse={student}", f"{DISTILL}.start_from={student}"])


def test_refuses_a_variant_below_its_floor_and_publishes_nothing(tiny_bert, tiny_corpus, tmp_path: Path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_bert, tiny_corpus, variants=["fp32", "student"])
    with pytest.raises(AccuracyRefusedError, match="below the recipe's floor"):
        run_pipeline(
            recipe, tmp_path / "repo", workdir=tmp_path / "w", progress=False,
            overrides=["export.verify.min_mean_cosine.student=0.999999", f"{DISTILL}.max_steps=1"],
        )  # fmt: skip
    assert list_models(tmp_path / "repo") == []


def test_recipe_errors_name_the_key(tmp_path: Path, tiny_bert: Path, tiny_corpus: Path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_bert, tiny_corpus, variants=["fp32", "int4"])
    with pytest.raises(ExportError, match=r"unknown variant 'int4'"):
        prepare_recipe(recipe)
    with pytest.raises(UserError, match=r"expected key\.sub=value"):
        prepare_recipe(recipe, ["nonsense"])
    with pytest.raises(ExportError, match=r"'data.corpsu'"):
        prepare_recipe(recipe, ["data.corpsu=x"])
    with pytest.raises(ExportError, match=r"model.source 'hub': expected one of train, hf"):
        prepare_recipe(recipe, ["model.source=hub"])
    # a step that takes another kind of model than the chain holds is refused before anything runs
    with pytest.raises(ExportError, match=r"step 1 \(quantize-smooth\) takes an ONNX model, the chain holds a pre"):
        prepare_recipe(recipe, ["export.steps.fp32=[{pass: quantize-smooth}]", "export.variants=[fp32]"])
    with pytest.raises(ExportError, match=r"distill-encoder\) takes a pretrained text encoder"):
        prepare_recipe(REPO / "recipes" / "digits.yaml", ["export.steps.fp32=[{pass: distill-encoder}, {pass: onnx}]"])
    prepared = prepare_recipe(REPO / "recipes" / "minilm.yaml")
    assert prepared.name == "minilm"
    assert prepared.spec.variants == VARIANTS


def test_the_long_recipe_changes_only_the_corpus_and_the_distillation():
    demo = prepare_recipe(REPO / "recipes" / "minilm.yaml").spec
    long = prepare_recipe(REPO / "recipes" / "minilm-long.yaml").spec
    assert long.verify == demo.verify
    for variant in VARIANTS:
        demo_steps, long_steps = demo.steps_for(variant), long.steps_for(variant)
        assert [s["pass"] for s in demo_steps] == [s["pass"] for s in long_steps]
        changed = [s for s, t in zip(demo_steps, long_steps, strict=True) if s != t]
        if variant.startswith("student"):
            (step,) = changed
            assert {k for k in {*step, *long_steps[0]} if step.get(k) != long_steps[0].get(k)} == {
                "epochs",
                "hidden_weight",
                "length_buckets",
                "eval_every",
            }
        else:
            assert changed == []
    raw = {name: yaml.safe_load((REPO / "recipes" / name).read_text()) for name in ("minilm.yaml", "minilm-long.yaml")}
    assert raw["minilm-long.yaml"]["data"] == {**raw["minilm.yaml"]["data"], "corpus": "python-docs"}


@pytest.mark.slow
def test_cli_publishes_and_prints_the_summary(tiny_bert: Path, tiny_corpus: Path, tmp_path: Path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_bert, tiny_corpus, variants=["fp32"])
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "modelpress", "pipeline", "--recipe", str(recipe), "-r", str(tmp_path / "repo"),
               "--workdir", str(tmp_path / "work"), "--quiet"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "tiny" in result.stdout
    assert "checkpoint" not in result.stdout  # nothing was trained: no "checkpoint: None"
    assert "mean cos" in result.stdout  # an embedding model's quality in the summary
    assert list_models(tmp_path / "repo") == ["tiny"]


def test_cli_reports_a_missing_model_in_one_line(tmp_path: Path, tiny_corpus: Path):
    from typer.testing import CliRunner

    from modelpress.cli import build_app

    recipe = write_recipe(tmp_path / "r.yaml", tmp_path / "no-such-model", tiny_corpus)
    result = CliRunner().invoke(build_app(), ["pipeline", "--recipe", str(recipe), "-r", str(tmp_path / "r")])
    assert result.exit_code == 2
    output = result.output.strip()
    assert output.startswith("error: model source")
    assert len(output.splitlines()) == 1
    assert list_models(tmp_path / "r") == []
    assert not (Path.cwd() / "modelpress-work").exists()  # nothing created on bad input


def test_cli_reports_an_unknown_corpus_before_creating_anything(tmp_path: Path, tiny_bert: Path, monkeypatch):
    from typer.testing import CliRunner

    from modelpress.cli import build_app

    monkeypatch.chdir(tmp_path)
    recipe = write_recipe(tmp_path / "r.yaml", tiny_bert, tmp_path / "no-such-corpus.txt")
    result = CliRunner().invoke(build_app(), ["pipeline", "--recipe", str(recipe), "-r", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: corpus file")
    assert "python-docs" in result.output  # the named corpora are listed
    assert not (tmp_path / "modelpress-work").exists()
