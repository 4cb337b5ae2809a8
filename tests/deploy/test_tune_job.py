"""The tuning Job (k8s/tune): an indexed Job whose workers share one study, with a command the CLI and the
pipeline image accept."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from modelpress.training.recipe import load_recipe
from tests.deploy.files import ROOT, Stage, image_extras, one
from tests.deploy.test_pipeline_job import _cli_options


@pytest.fixture(scope="module")
def job(rendered: dict[str, list[dict]]) -> dict:
    return one(rendered["tune"], "Job")


def _container(job: dict) -> dict:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container


def _args(job: dict) -> list[str]:
    command = _container(job)["command"]
    assert command[:2] == ["modelpress", "tune"], command
    return command[2:]


def _option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_workers_start_together_as_an_indexed_job(job: dict) -> None:
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["parallelism"] == spec["completions"] >= 2  # all workers start at once: the race issue 19 is about
    assert spec["template"]["spec"]["restartPolicy"] == "Never"  # backoffLimitPerIndex requires it
    assert spec["backoffLimitPerIndex"] >= 1  # a worker killed mid-trial is replaced


def test_tune_options_exist(job: dict) -> None:
    options = [a for a in _args(job) if a.startswith("--")]
    known = _cli_options()["tune"]
    assert not [o for o in options if o not in known], f"`modelpress tune` has no {set(options) - known}"


def test_recipe_is_in_the_image_and_has_a_search_space(job: dict) -> None:
    """The recipe path resolves against the pipeline image's WORKDIR (a copy of the repository)."""
    recipe = load_recipe(ROOT / _option(_args(job), "--recipe"))
    assert recipe.tune.space


def test_storage_url_comes_from_the_mounted_secret(job: dict) -> None:
    """No password in the manifest or the command line: the URL is read from a file of a Secret volume."""
    args = _args(job)
    assert "--storage" not in args
    path = PurePosixPath(_option(args, "--storage-file"))
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m for m in _container(job)["volumeMounts"]}
    mount = mounts[str(path.parent)]
    assert mount["readOnly"] is True
    secret = volumes[mount["name"]]["secret"]
    assert secret["secretName"] == "modelpress-tune-storage"
    assert {"key": "url", "path": path.name} in secret["items"]


def test_results_land_on_the_models_claim_outside_any_model(job: dict) -> None:
    out = PurePosixPath(_option(_args(job), "--out"))
    mounts = {m["mountPath"]: m["name"] for m in _container(job)["volumeMounts"]}
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mounts["/models"]]["persistentVolumeClaim"]["claimName"] == "modelpress-models"
    assert out.is_relative_to("/models")
    # the servers list <model>/<numeric version>/: a tuning folder must not look like a model version
    assert not any(part.isdigit() for part in out.relative_to("/models").parts)


def test_pipeline_image_installs_the_postgres_driver(job: dict, stages: dict[str, Stage]) -> None:
    image = _container(job)["image"]
    assert image.rsplit(":", 1)[0].endswith("modelpress-pipeline")
    extras = image_extras(stages)["pipeline"]
    assert "postgres" in extras, "the pipeline image must install the [postgres] extra (psycopg2)"
