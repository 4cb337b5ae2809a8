"""Readers for the deployment files the tests check: Dockerfile, .dockerignore, the constraints lock, kustomize."""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import tomllib
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
DOCKERFILE = ROOT / "Dockerfile"
CONSTRAINTS = ROOT / "constraints"
LOCK = CONSTRAINTS / "images.txt"

# Every kustomization a user applies; each must render and validate on its own.
KUSTOMIZATIONS = (
    "overlays/cpu", "overlays/gpu", "overlays/cpu-baked", "overlays/grpc-tls", "pipeline", "monitoring", "tune",
    "overlays/object-storage", "pipeline-object-storage",
)  # fmt: skip
SERVER_OVERLAYS = ("overlays/cpu", "overlays/gpu", "overlays/cpu-baked", "overlays/object-storage")
# The package extras each image's build stage installs (the Dockerfile, under constraints/images.txt): the servers
# speak gRPC too and read s3:// repositories (k8s/overlays/object-storage); the pipeline publishes there and tunes
# against PostgreSQL (k8s/tune).
IMAGE_EXTRAS = {
    "serve-build": ("grpc", "s3", "serve"),
    "serve-gpu-build": ("gpu", "grpc", "s3"),
    "pipeline": ("export", "hf", "postgres", "s3", "serve"),
}
# Prefix of the server settings in the environment (modelpress.serving.settings.Settings).
PREFIX = "MODELPRESS_"


def find_tool(name: str) -> str | None:
    """A command on PATH or in the interpreter's own bin folder (the venv), else None."""
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else None


# --------------------------------------------------------------------------------------------------- Dockerfile


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int
    comments: list[str] = field(default_factory=list)

    def exec_form(self) -> list[str] | None:
        """The JSON-array form of CMD/ENTRYPOINT/HEALTHCHECK CMD, or None when written in shell form."""
        text = self.args
        if self.keyword == "HEALTHCHECK":
            text = text.split(" CMD ", 1)[1].strip() if " CMD " in f" {text}" else ""
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, list) else None


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        """ENV key=value pairs set in this stage, in order (later wins)."""
        out: dict[str, str] = {}
        for inst in self.all("ENV"):
            for token in shlex.split(inst.args):
                key, _, value = token.partition("=")
                out[key] = value
        return out


def parse_dockerfile(path: Path = DOCKERFILE) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, each with its instructions (continuations joined)."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    comments: list[str] = []
    pending = ""
    start = 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            if line.startswith("#"):
                comments.append(line)
            elif not line:
                comments = []
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text, pending = pending + line, ""
        keyword, _, args = text.partition(" ")
        inst = Instruction(keyword.upper(), " ".join(args.split()), start, comments)
        comments = []
        if inst.keyword == "FROM":
            parts = inst.args.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else f"stage{len(stages)}"
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args.get(m.group(1), m.group(0)), parts[0])
            stages.append(Stage(name, base, []))
        elif not stages and inst.keyword == "ARG":
            key, _, value = inst.args.partition("=")
            global_args[key] = value
        elif stages:
            stages[-1].instructions.append(inst)
    return global_args, stages


def stage_map(stages: list[Stage]) -> dict[str, Stage]:
    return {s.name: s for s in stages}


def copy_sources(stages: list[Stage]) -> list[str]:
    """Build-context paths copied by COPY instructions (not --from=stage copies)."""
    out = []
    for stage in stages:
        for inst in stage.all("COPY"):
            tokens = shlex.split(inst.args)
            if any(t.startswith("--from=") for t in tokens):
                continue
            paths = [t for t in tokens if not t.startswith("--")]
            out.extend(paths[:-1])
    return out


# ------------------------------------------------------------------------------------------------ .dockerignore


def dockerignore_patterns(path: Path = ROOT / ".dockerignore") -> list[tuple[bool, str]]:
    """(is_exception, pattern) pairs in file order, as Docker reads them."""
    out = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        out.append((negate, pattern.strip().strip("/")))
    return out


def _pattern_matches(pattern: str, rel: str) -> bool:
    """Docker's rule: a pattern matches a path or any of its parent folders; `**` spans folders."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
    regex = regex.replace(r"\?", "[^/]")
    compiled = re.compile(f"^{regex}$")
    return any(compiled.match(p) for p in prefixes)


def is_ignored(rel: str, patterns: list[tuple[bool, str]]) -> bool:
    """Whether Docker leaves ``rel`` (a path relative to the context) out: the last matching rule wins."""
    ignored = False
    for negate, pattern in patterns:
        if _pattern_matches(pattern, rel):
            ignored = not negate
    return ignored


# ------------------------------------------------------------------------------------------ extras and the lock


def read_requirements(path: Path) -> dict[str, str]:
    """{normalised distribution name: pinned version} of a requirements file, following ``-r`` includes."""
    out: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            out.update(read_requirements(path.parent / line[3:].strip()))
            continue
        name, sep, version = line.partition("==")
        if not sep:
            raise AssertionError(f"{path.name}: {line!r} is not pinned with ==")
        out[normalise(name)] = version.strip()
    return out


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def extras_requirements(extras: list[str]) -> list[Requirement]:
    """The base dependencies plus those of ``extras``, expanded by the script the Dockerfile runs for them."""
    spec = importlib.util.spec_from_file_location("constraints_requirements", CONSTRAINTS / "requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in module.requirements(project, extras)]


def image_extras(stages: list[Stage] | dict[str, Stage]) -> dict[str, list[str]]:
    """{build stage: the extras its dependency install asks constraints/requirements.py for}."""
    found = {}
    for stage in stages.values() if isinstance(stages, dict) else stages:
        for inst in stage.all("RUN"):
            match = re.search(r"constraints/requirements\.py\s+\S+\s+([\w ]+?)\s*>", inst.args)
            if match:
                found[stage.name] = match.group(1).split()
    return found


def dependency_closure(requirements: dict[str, str]) -> set[str]:
    """The listed distributions and everything they depend on at run time (this environment's metadata).

    Distributions not installed here (GPU-only ones such as onnxruntime-gpu, which cannot sit beside
    onnxruntime) end the walk on their branch.
    """
    seen: set[str] = set()
    todo = list(requirements)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(normalise(req.name))
    return seen


# -------------------------------------------------------------------------------------------------- kustomize


def kustomize_command() -> list[str] | None:
    """``kubectl kustomize`` (kustomize built in), else a standalone ``kustomize build``, else None."""
    kubectl = find_tool("kubectl")
    if kubectl is not None:
        return [kubectl, "kustomize"]
    kustomize = find_tool("kustomize")
    return [kustomize, "build"] if kustomize is not None else None


def render(command: list[str], kustomization: str) -> list[dict]:
    """Objects rendered by ``kubectl kustomize k8s/<kustomization>`` (works offline)."""
    result = subprocess.run(
        [*command, str(K8S / kustomization)], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command[1:])} k8s/{kustomization} failed: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict], kind: str) -> dict:
    found = of_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_specs(objects: list[dict]) -> list[tuple[str, dict]]:
    """(object name, pod spec) of every workload that runs pods."""
    out = []
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            out.append((f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]))
    return out


def containers(pod_spec: dict) -> list[dict]:
    return list(pod_spec.get("initContainers", [])) + list(pod_spec["containers"])


def adapter_config(objects: list[dict]) -> dict:
    """The prometheus-adapter config (``rules``) shipped in k8s/monitoring."""
    found = [o for o in of_kind(objects, "ConfigMap") if "config.yaml" in o.get("data", {})]
    assert len(found) == 1, "k8s/monitoring must ship one prometheus-adapter ConfigMap"
    return yaml.safe_load(found[0]["data"]["config.yaml"])
