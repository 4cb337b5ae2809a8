from pathlib import Path

import pytest

from modelpress.export.errors import ExportError
from modelpress.export.passes.base import EncoderHandle, TorchHandle
from modelpress.export.sources import SOURCES, prepare_recipe
from modelpress.export.spec import chain_problem
from modelpress.training.recipe import RecipeError

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def test_the_model_source_picks_the_start_and_the_chains_are_checked_against_it():
    assert set(SOURCES) >= {"train", "hf"}
    trained = prepare_recipe(RECIPES / "digits-compress.yaml", ["model.source=train"])  # the default, said aloud
    assert trained.name == "digits"
    assert "student-int8" in trained.spec.variants
    with pytest.raises(ExportError, match=r"model.source 'hub': expected one of train, hf"):
        prepare_recipe(RECIPES / "digits.yaml", ["model.source=hub"])
    with pytest.raises(RecipeError, match="does not exist"):
        prepare_recipe(RECIPES / "no-such.yaml")


def test_each_pass_takes_the_handles_it_declares():
    distill = [{"pass": "distill"}, {"pass": "onnx"}]
    assert chain_problem(distill, TorchHandle) is None
    # a pretrained encoder has no checkpoint data to distil on: its own pass is distill-encoder
    assert "step 1 (distill) takes" in chain_problem(distill, EncoderHandle)
    assert chain_problem([{"pass": "distill-encoder"}, {"pass": "onnx"}], EncoderHandle) is None
    assert "ends with a pretrained text encoder" in chain_problem([{"pass": "distill-encoder"}], EncoderHandle).replace(
        "steps end", "ends"
    )
    assert "takes an ONNX model, the chain holds a PyTorch module" in chain_problem([{"pass": "fp16"}], TorchHandle)


def test_a_recipe_in_the_old_text_dialect_says_how_to_write_it(tmp_path):
    recipe = tmp_path / "old.yaml"
    recipe.write_text("model: {source: hf}\ndistill: {layers: [0, 2, 5]}\nexport: {int8: {max_fp32_nodes: 4}}\n")
    with pytest.raises(ExportError, match=r"'distill' is the old text recipe's.*\{pass: distill-encoder\} step"):
        prepare_recipe(recipe)
    recipe.write_text("model: {source: hf}\nexport: {int8: {max_fp32_nodes: 4}}\n")
    with pytest.raises(ExportError, match=r"'export.int8' .* \{pass: quantize-smooth\} step"):
        prepare_recipe(recipe)
