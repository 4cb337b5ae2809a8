from pathlib import Path

import pytest

from modelpress.training.recipe import Recipe, RecipeError, load_recipe, recipe_from_dict

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.mark.parametrize("name", ["digits.yaml", "digits-mlp.yaml"])
def test_shipped_recipes_are_valid(name):
    recipe = load_recipe(RECIPES / name)
    assert isinstance(recipe, Recipe)
    assert recipe.data.source == "digits"


def test_default_recipe_is_a_cnn_with_a_search_space():
    recipe = load_recipe(RECIPES / "digits.yaml")
    assert recipe.model.architecture == "cnn"
    assert "model.architecture" in recipe.tune.space


def test_overrides_are_yaml_typed():
    recipe = recipe_from_dict(
        {}, ["training.epochs=3", "model.architecture=mlp", "model.config.hidden=[8, 4]", "training.grad_clip=0.5"]
    )
    assert recipe.training.epochs == 3
    assert recipe.model.config == {"hidden": [8, 4]}
    assert recipe.training.grad_clip == 0.5


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("training.epochz=3", "unknown --set key 'training.epochz'"),
        ("trainingg.epochs=3", "unknown --set key 'trainingg'"),
        ("model.config.widthh=3", "unknown --set key 'model.config.widthh'"),
        ("model.architecture=resnet", "unknown architecture 'resnet'"),
        ("training.optimizer.name=lion", "training.optimizer.name"),
        ("training.epochs=0", "training.epochs"),
        ("no_equals_sign", "expected key.sub=value"),
    ],
)
def test_bad_override_names_the_problem(override, message):
    with pytest.raises(RecipeError, match=message.replace(".", r"\.").replace("(", r"\(")):
        recipe_from_dict({}, [override])


def test_override_below_a_value_is_refused():
    with pytest.raises(RecipeError, match="'epochs' is not a section"):
        recipe_from_dict({"training": {"epochs": 2}}, ["training.epochs.x=1"])


def test_export_section_is_kept_raw():
    recipe = recipe_from_dict({"export": {"passes": [{"name": "anything", "x": 1}]}}, ["export.extra.deep=2"])
    assert recipe.export == {"passes": [{"name": "anything", "x": 1}], "extra": {"deep": 2}}


def test_unknown_key_in_file_and_missing_file(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("training:\n  epochs: 2\n  lr: 0.1\n")
    with pytest.raises(RecipeError, match=r"unknown key 'training\.lr'"):
        load_recipe(bad)
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "missing.yaml")
    bad.write_text("training: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(bad)


def test_csv_source_needs_path_and_label():
    with pytest.raises(RecipeError, match=r"needs data\.path"):
        recipe_from_dict({"data": {"source": "csv"}})
    with pytest.raises(RecipeError, match=r"needs data\.label"):
        recipe_from_dict({"data": {"source": "csv", "path": "x.csv"}})


def test_round_trip_through_yaml(tmp_path):
    recipe = load_recipe(RECIPES / "digits.yaml", ["training.epochs=7"])
    path = tmp_path / "again.yaml"
    path.write_text(recipe.to_yaml())
    assert load_recipe(path) == recipe
