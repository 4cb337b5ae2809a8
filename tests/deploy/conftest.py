from __future__ import annotations

import pytest

from tests.deploy.files import KUSTOMIZATIONS, Stage, kustomize_command, parse_dockerfile, render


@pytest.fixture(scope="session")
def kustomize() -> list[str]:
    command = kustomize_command()
    if command is None:
        pytest.skip("neither kubectl nor kustomize found on PATH or beside the interpreter: they render k8s/")
    return command


@pytest.fixture(scope="session")
def rendered(kustomize: list[str]) -> dict[str, list[dict]]:
    """Every kustomization, rendered once per session."""
    return {name: render(kustomize, name) for name in KUSTOMIZATIONS}


@pytest.fixture(scope="session")
def stages() -> dict[str, Stage]:
    _, parsed = parse_dockerfile()
    return {s.name: s for s in parsed}


@pytest.fixture(scope="session")
def tiny_repository(tmp_path_factory: pytest.TempPathFactory):
    """A model repository holding one tiny Gemm model ``tiny`` v1: x FP32 [-1, 4] -> y FP32 [-1, 3]."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from modelpress.serving.manifest import ModelManifest, TensorSpec, file_records, write_manifest

    root = tmp_path_factory.mktemp("repository")
    version_dir = root / "tiny" / "1"
    version_dir.mkdir(parents=True)
    weights = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3) / 10, "w")
    bias = numpy_helper.from_array(np.array([0.5, -0.5, 0.0], dtype=np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        initializer=[weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, version_dir / "model.onnx")
    manifest = ModelManifest(
        name="tiny",
        version=1,
        task="regression",
        inputs=[TensorSpec(name="x", datatype="FP32", shape=[-1, 4])],
        outputs=[TensorSpec(name="y", datatype="FP32", shape=[-1, 3])],
        files=file_records(version_dir),
    )
    write_manifest(manifest, version_dir)
    return root


@pytest.fixture(scope="session")
def serve_image_path(tmp_path_factory: pytest.TempPathFactory):
    """PYTHONPATH of a stand-in for the `serve` image: the dependencies of its extras and modelpress with its
    serving stages."""
    from tests.deploy.files import IMAGE_EXTRAS, extras_requirements, normalise
    from tests.deploy.image_env import build

    direct = {
        normalise(r.name): ""
        for r in extras_requirements(list(IMAGE_EXTRAS["serve-build"]))
        if r.marker is None or r.marker.evaluate()
    }
    return build(tmp_path_factory.mktemp("serve-image"), direct)
