import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelpress.export.errors import ExportError
from modelpress.export.graph_rewrite import gemm_to_matmul, topological_sort
from modelpress.export.passes import PASSES, build_pass
from modelpress.export.spec import parse_spec, variant_model_name


def test_default_spec_and_pass_registry():
    spec = parse_spec(None)
    assert spec.variants == ["fp32", "fp16", "int8"]
    assert [s["pass"] for s in spec.steps_for("int8")] == ["onnx", "quantize"]
    assert {"onnx", "optimize", "fp16", "quantize"} <= set(PASSES)
    quantize = build_pass({"pass": "quantize", "calibration": "entropy"})
    assert quantize.config.calibration == "entropy"
    assert quantize.config.per_channel is True


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"variants": ["fp32", "int4"]}, "unknown variant 'int4'"),
        ({"variants": []}, "at least one variant"),
        ({"verify": {"max_accuracy_drop": 2}}, "verify.max_accuracy_drop"),
        ({"colour": "red"}, "export.colour"),
        ({"steps": {"int8": [{"pass": "quantize"}]}}, "first step must be {pass: onnx}"),
        ({"steps": {"fp32": [{"pass": "onnx"}, {"pass": "shrink"}]}}, "unknown export pass 'shrink'"),
        ({"steps": {"fp32": [{"pass": "onnx", "opset": 9}]}}, "export pass 'onnx': opset"),
        ({"steps": {"int8": [{"pass": "onnx"}, {"pass": "quantize", "calibrate": "x"}]}}, "calibrate"),
    ],
)
def test_bad_export_sections_name_the_problem(raw, message):
    with pytest.raises(ExportError) as info:
        parse_spec(raw)
    assert message in str(info.value)


def test_variant_names():
    assert variant_model_name("digits", "fp32") == "digits"
    assert variant_model_name("digits", "int8") == "digits-int8"
    for bad in ("a/b", "..", "a..b", ".hidden"):
        with pytest.raises(ExportError, match="invalid model name"):
            variant_model_name(bad, "fp32")


def _gemm_model(trans_b: int) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 4) if trans_b else (4, 5)).astype(np.float32)
    nodes = [
        helper.make_node("Gemm", ["x", "w", "b"], ["h"], transB=trans_b),
        helper.make_node("Relu", ["h"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 5])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.arange(5, dtype=np.float32), "b")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9  # what onnxruntime 1.31 reads; onnx 1.23 writes a newer one by default
    return model


def _run(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_to_matmul_keeps_outputs(trans_b):
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    expected = _run(_gemm_model(trans_b), x)
    rewritten, count = gemm_to_matmul(_gemm_model(trans_b))
    onnx.checker.check_model(rewritten)
    assert count == 1
    assert [n.op_type for n in rewritten.graph.node] == ["MatMul", "Add", "Relu"]
    assert {t.name for t in rewritten.graph.initializer} == {"w_matmul", "b"}
    np.testing.assert_allclose(_run(rewritten, x), expected, rtol=1e-6)


def test_topological_sort_orders_appended_nodes():
    model = _gemm_model(0)
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(reversed(nodes))
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(model)
    onnx.checker.check_model(topological_sort(model))
