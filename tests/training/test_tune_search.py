import optuna
import pytest

from modelpress.training.checkpoint import CheckpointError
from modelpress.training.recipe import RecipeError, load_recipe, recipe_from_dict
from modelpress.training.study import StudyError
from modelpress.training.tune import TuneError, run_tune, trial_rows, validate_space

SPACE = {
    "model.architecture": {"choices": ["mlp", "cnn"]},
    "training.optimizer.lr": {"low": 0.001, "high": 0.03, "log": True},
    "model.config.hidden": {"choices": [[8], [16, 8]], "architectures": ["mlp"]},
    "model.config.channels": {"choices": [[4], [8]], "architectures": ["cnn"]},
}


def _recipe(**tune):
    raw = {
        "name": "tiny-search",
        "model": {"architecture": "mlp", "config": {"hidden": [8]}},
        "training": {"epochs": 2, "batch_size": 128},
        "tune": {
            "epochs": 2,
            "space": SPACE,
            "model_configs": {"cnn": {"channels": [4], "hidden": 8}},
            **tune,
        },
    }
    return recipe_from_dict(raw)


@pytest.mark.slow
def test_tpe_search_writes_trials_best_recipe_and_checkpoint(tmp_path):
    result = run_tune(_recipe(sampler="tpe"), tmp_path / "t", trials=3, progress=False)
    out = tmp_path / "t"
    assert len(result.trials) == 3
    lines = (out / "trials.csv").read_text().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("trial,state,value,seconds")
    best = load_recipe(out / "best_recipe.yaml")
    assert best.model.architecture == result.best_params["model.architecture"]
    assert best.training.optimizer.lr == pytest.approx(result.best_params["training.optimizer.lr"])
    assert (result.checkpoint / "checkpoint.json").is_file()
    completed = [r["value"] for r in result.trials if r["state"] == "COMPLETE"]
    assert result.best_value == max(completed)
    study = optuna.load_study(study_name="tiny-search", storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == 3
    # only the parameters of the chosen architecture were sampled
    for t in study.trials:
        other = "model.config.channels" if t.params["model.architecture"] == "mlp" else "model.config.hidden"
        assert other not in t.params


def test_random_sampler_with_cv_and_shared_storage(tmp_path):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    recipe = _recipe(sampler="random", cv_folds=2, pruner="none", epochs=1)
    first = run_tune(recipe, tmp_path / "a", trials=2, storage=storage, progress=False, train_best=False)
    assert first.checkpoint is None
    assert first.wrote_results
    assert not (tmp_path / "a" / "study.db").exists()
    # --trials is the size of the whole study: a later run with a larger one extends it to that size
    second = run_tune(recipe, tmp_path / "b", trials=3, storage=storage, progress=False, train_best=False)
    assert len(second.trials) == 3
    assert (tmp_path / "b" / "best_recipe.yaml").is_file()
    # a worker joining a study that already holds its budget runs nothing and writes nothing
    third = run_tune(recipe, tmp_path / "c", trials=3, storage=storage, progress=False, train_best=False)
    assert len(third.trials) == 3
    assert not third.wrote_results
    assert third.results_by == second.results_by
    assert not (tmp_path / "c").exists()


def test_a_shared_study_refuses_an_existing_out_and_runs_nothing(tmp_path):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep")
    with pytest.raises(CheckpointError, match="already exists"):
        run_tune(_recipe(sampler="random", epochs=1), tmp_path / "out", trials=2, storage=storage, progress=False)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["mine.txt"]
    assert optuna.load_study(study_name="tiny-search", storage=storage).trials == []


def test_median_pruner_prunes_a_hopeless_trial(tmp_path):
    space = {"training.optimizer.lr": {"choices": [0.01, 1e-7]}}
    recipe = recipe_from_dict(
        {
            "model": {"architecture": "mlp", "config": {"hidden": [8]}},
            "training": {"epochs": 4, "batch_size": 128},
            "tune": {"space": space, "sampler": "random", "pruner": "median", "startup_trials": 2, "warmup_steps": 1},
        }
    )
    result = run_tune(recipe, tmp_path / "p", trials=6, progress=False, train_best=False)
    # after the pruner's 2 start-up trials, every hopeless trial is cut short and every good one completes
    late = [(r["params"]["training.optimizer.lr"], r["state"]) for r in result.trials[2:]]
    assert any(lr == 1e-7 for lr, _ in late)  # the seeded sampler does draw it
    assert all(state == ("PRUNED" if lr == 1e-7 else "COMPLETE") for lr, state in late)


@pytest.mark.parametrize(
    ("tune", "message"),
    [
        ({"space": {"training.lrr": {"low": 0.1, "high": 1.0}}}, "'training.lrr'"),
        ({"space": {"model.architecture": {"choices": ["mlp", "resnet"]}}}, "resnet"),
        ({"space": {"data.path": {"choices": ["x"]}}}, "cannot be searched"),
        ({"space": {}}, "tune.space is empty"),
        ({"metric": "val_r2"}, "unknown tune.metric 'val_r2'"),
    ],
)
def test_bad_space_fails_before_any_trial(tune, message, tmp_path):
    recipe = recipe_from_dict({"tune": {"space": SPACE, **tune}})
    with pytest.raises(TuneError, match=message.replace(".", r"\.")):
        validate_space(recipe)
    with pytest.raises(TuneError):
        run_tune(recipe, tmp_path / "x", trials=1, progress=False)
    assert not (tmp_path / "x").exists()


def test_a_trial_checks_the_monitor_as_train_does(tmp_path, monkeypatch):
    """Trials build their model through modelpress.training.api.build_for_recipe: a monitor the task lacks fails every
    trial before any training, as `modelpress train` refuses it."""
    import modelpress.training.tune

    fitted = []
    monkeypatch.setattr(modelpress.training.tune, "fit", lambda *a, **k: fitted.append(a))
    recipe = recipe_from_dict(
        {
            "model": {"architecture": "mlp", "config": {"hidden": [8]}},
            "training": {"epochs": 1, "early_stopping": {"metric": "val_r2"}},
            "tune": {"space": {"training.optimizer.lr": {"choices": [0.01, 0.02]}}, "pruner": "none"},
        }
    )
    with pytest.raises(TuneError, match="no trial completed"):
        run_tune(recipe, tmp_path / "m", trials=2, progress=False, train_best=False)
    study = optuna.load_study(study_name=recipe.name, storage=f"sqlite:///{tmp_path / 'm' / 'study.db'}")
    assert [row["state"] for row in trial_rows(study)] == ["FAIL", "FAIL"]
    assert fitted == []


def test_bad_range_in_recipe():
    with pytest.raises(RecipeError, match=r"low 2\.0 is above high 1\.0"):
        recipe_from_dict({"tune": {"space": {"training.optimizer.lr": {"low": 2, "high": 1}}}})


def test_bad_storage_leaves_nothing(tmp_path):
    with pytest.raises(StudyError, match="nosuchdb://x: not a database URL Optuna can use"):
        run_tune(_recipe(), tmp_path / "s", trials=1, storage="nosuchdb://x", progress=False)
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_tune_cli(tmp_path, cli):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(_recipe().to_yaml())
    run = cli("tune", "--recipe", str(recipe), "--trials", "2", "--out", str(tmp_path / "t"), "--no-progress")
    assert run.returncode == 0, run.stderr
    assert "trials (val_accuracy)" in run.stdout
    assert "best val_accuracy" in run.stdout
    assert (tmp_path / "t" / "checkpoint" / "model.safetensors").is_file()
