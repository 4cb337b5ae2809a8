"""The pipeline Job's command lines are ones the project's CLI and torchrun accept."""

from __future__ import annotations

import subprocess

import pytest

from tests.deploy.files import ROOT, find_tool, one


def _cli_options() -> dict[str, set[str]]:
    """{verb: its option strings} of the real `modelpress` CLI."""
    import typer.main

    from modelpress.cli import build_app

    group = typer.main.get_command(build_app())
    return {name: {o for p in cmd.params for o in p.opts} for name, cmd in group.commands.items()}


def _job_commands(rendered: dict[str, list[dict]]) -> dict[str, list[str]]:
    pod = one(rendered["pipeline"], "Job")["spec"]["template"]["spec"]
    return {c["name"]: c["command"] for c in pod["initContainers"] + pod["containers"]}


def _modelpress_args(command: list[str]) -> list[str]:
    """The `modelpress ...` part of a command (after torchrun's own options when it starts it)."""
    return command[command.index("modelpress") + 1 :]


@pytest.mark.parametrize("step", ["train", "export"])
def test_job_verbs_and_options_exist(rendered: dict[str, list[dict]], step: str) -> None:
    args = _modelpress_args(_job_commands(rendered)[step])
    verb, options = args[0], [a for a in args[1:] if a.startswith("--")]
    cli = _cli_options()
    assert verb in cli, f"the Job runs `modelpress {verb}`, which the CLI does not have (verbs: {sorted(cli)})"
    unknown = [o for o in options if o.split("=")[0] not in cli[verb]]
    assert not unknown, f"`modelpress {verb}` has no {unknown}"


def test_job_recipe_is_in_the_image(rendered: dict[str, list[dict]]) -> None:
    """The recipe path resolves against /src (the pipeline image's WORKDIR, a copy of the repository)."""
    args = _modelpress_args(_job_commands(rendered)["train"])
    recipe = args[args.index("--recipe") + 1]
    assert (ROOT / recipe).is_file()


def test_job_checkpoint_flows_from_train_to_export(rendered: dict[str, list[dict]]) -> None:
    commands = _job_commands(rendered)
    train = _modelpress_args(commands["train"])
    export = _modelpress_args(commands["export"])
    assert train[train.index("--out") + 1] == export[1]


def test_torchrun_accepts_the_job_options(rendered: dict[str, list[dict]]) -> None:
    torchrun = find_tool("torchrun")
    if torchrun is None:
        pytest.skip("torchrun not installed (it comes with torch)")
    command = _job_commands(rendered)["train"]
    own = command[1 : command.index("modelpress")]
    result = subprocess.run([torchrun, "--help"], capture_output=True, text=True, timeout=120, check=True)
    for option in own:
        assert option.split("=")[0] in result.stdout, f"torchrun has no {option}"
