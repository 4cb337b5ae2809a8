"""Tiny ONNX classifiers written straight with onnx.helper, published with real manifests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from modelpress.serving.manifest import (
    ModelManifest,
    PassRecord,
    SizeInfo,
    TensorSpec,
    file_records,
    write_manifest,
)


def gemm_classifier(features: int, hidden: int, classes: int, seed: int) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array(rng.standard_normal((features, hidden)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(np.zeros(hidden, np.float32), "b1")
    w2 = numpy_helper.from_array(rng.standard_normal((hidden, classes)).astype(np.float32), "w2")
    b2 = numpy_helper.from_array(np.zeros(classes, np.float32), "b2")
    nodes = [
        helper.make_node("Gemm", ["input", "w1", "b1"], ["h"]),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("Gemm", ["hr", "w2", "b2"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        [w1, b1, w2, b2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def publish(
    repository: Path,
    name: str,
    model: onnx.ModelProto,
    *,
    accuracy: float,
    lineage: tuple[str, ...] = ("onnx",),
    precision: str = "fp32",
    source: dict | None = None,
) -> Path:
    version_dir = repository / name / "1"
    version_dir.mkdir(parents=True)
    onnx.save(model, str(version_dir / "model.onnx"))
    features = model.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    classes = model.graph.output[0].type.tensor_type.shape.dim[1].dim_value
    params = sum(int(np.prod(i.dims)) for i in model.graph.initializer)
    manifest = ModelManifest(
        name=name,
        version=1,
        task="classification",
        precision=precision,
        inputs=[TensorSpec(name="input", datatype="FP32", shape=[-1, features])],
        outputs=[TensorSpec(name="logits", datatype="FP32", shape=[-1, classes])],
        labels=[str(i) for i in range(classes)],
        lineage=[PassRecord(name=step) for step in lineage],
        files=file_records(version_dir),
        size=SizeInfo(onnx_bytes=(version_dir / "model.onnx").stat().st_size, parameters=params),
        quality={"accuracy": accuracy, "macro_f1": accuracy - 0.01, "top1_agreement": 1.0},
        source=source or {},
    )
    write_manifest(manifest, version_dir)
    return version_dir
