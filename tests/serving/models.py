"""Tiny ONNX models built with onnx.helper (no torch) and published into a model repository."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from modelpress.serving.manifest import ModelManifest, Preprocessing, TensorSpec, file_records, write_manifest

FEATURES = 64
CLASSES = 10
LABELS = [f"digit-{i}" for i in range(CLASSES)]


def _save(graph: onnx.GraphProto, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, path)


def classifier_graph(seed: int) -> tuple[onnx.GraphProto, np.ndarray, np.ndarray]:
    """``logits = relu(input @ W + b)`` on 64 features, 10 classes; returns the graph and its weights."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((FEATURES, CLASSES)).astype(np.float32)
    b = rng.standard_normal(CLASSES).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["input", "W", "b"], ["z"]), helper.make_node("Relu", ["z"], ["logits"])],
        "classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", FEATURES])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", CLASSES])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
    )
    return graph, w, b


def classifier_reference(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum(x.astype(np.float32) @ w + b, 0)


MULTI_INPUTS = [
    TensorSpec(name="ids", datatype="INT64", shape=[-1, -1]),
    TensorSpec(name="mask", datatype="BOOL", shape=[-1, -1]),
    TensorSpec(name="x", datatype="FP64", shape=[-1, 3]),
    TensorSpec(name="h", datatype="FP16", shape=[-1, 2]),
    TensorSpec(name="u8", datatype="UINT8", shape=[-1, 2]),
    TensorSpec(name="text", datatype="BYTES", shape=[-1, 1]),
]
MULTI_OUTPUTS = [
    TensorSpec(name="sum_ids", datatype="INT64", shape=[-1, 1]),
    TensorSpec(name="not_mask", datatype="BOOL", shape=[-1, -1]),
    TensorSpec(name="x2", datatype="FP64", shape=[-1, 3]),
    TensorSpec(name="h2", datatype="FP16", shape=[-1, 2]),
    TensorSpec(name="u8_out", datatype="UINT8", shape=[-1, 2]),
    TensorSpec(name="text_out", datatype="BYTES", shape=[-1, 1]),
]
_ONNX_TYPE = {
    "INT64": TensorProto.INT64, "BOOL": TensorProto.BOOL, "FP64": TensorProto.DOUBLE, "FP16": TensorProto.FLOAT16,
    "UINT8": TensorProto.UINT8, "BYTES": TensorProto.STRING, "FP32": TensorProto.FLOAT,
}  # fmt: skip


def _vi(spec: TensorSpec) -> onnx.ValueInfoProto:
    dims = [f"d{i}" if d == -1 else d for i, d in enumerate(spec.shape)]
    return helper.make_tensor_value_info(spec.name, _ONNX_TYPE[spec.datatype], dims)


def multi_graph() -> onnx.GraphProto:
    """Several inputs/outputs of other datatypes, one with a dynamic second dimension."""
    nodes = [
        helper.make_node("ReduceSum", ["ids", "axis1"], ["sum_ids"], keepdims=1),
        helper.make_node("Not", ["mask"], ["not_mask"]),
        helper.make_node("Add", ["x", "x"], ["x2"]),
        helper.make_node("Add", ["h", "h"], ["h2"]),
        helper.make_node("Identity", ["u8"], ["u8_out"]),
        helper.make_node("Identity", ["text"], ["text_out"]),
    ]
    axis = numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1")
    return helper.make_graph(
        nodes, "multi", [_vi(s) for s in MULTI_INPUTS], [_vi(s) for s in MULTI_OUTPUTS], initializer=[axis]
    )


def publish(
    repository: Path,
    name: str,
    version: int,
    graph: onnx.GraphProto,
    extra_files: dict[str, str] | None = None,
    **manifest_fields: object,
) -> Path:
    """Write model + manifest into a hidden temporary folder, then rename it into place (atomic publish)."""
    model_dir = repository / name
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = model_dir / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    _save(graph, tmp / "model.onnx")
    for rel, text in (extra_files or {}).items():
        (tmp / rel).write_text(text)
    manifest = ModelManifest(name=name, version=version, files=file_records(tmp), **manifest_fields)
    write_manifest(manifest, tmp)
    final = model_dir / str(version)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    return final


def publish_classifier(
    repository: Path, name: str = "digits", version: int = 1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    graph, w, b = classifier_graph(seed)
    rng = np.random.default_rng(100 + seed)
    publish(
        repository, name, version, graph,
        task="classification", labels=LABELS,
        inputs=[TensorSpec(name="input", datatype="FP32", shape=[-1, FEATURES])],
        outputs=[TensorSpec(name="logits", datatype="FP32", shape=[-1, CLASSES])],
        preprocessing=Preprocessing(
            type="standardize", mean=rng.uniform(0, 5, FEATURES).tolist(), std=rng.uniform(1, 3, FEATURES).tolist()
        ),
    )  # fmt: skip
    return w, b


def publish_multi(repository: Path, name: str = "multi", version: int = 1) -> None:
    publish(repository, name, version, multi_graph(), task="regression", inputs=MULTI_INPUTS, outputs=MULTI_OUTPUTS)


WORDS = ["hello", "world", "a", "b", "c", "d", "e", "f", "g", "h", "the", "cat"]
VOCAB = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3} | {w: i + 4 for i, w in enumerate(WORDS)}
EMBED = 4
MAX_TOKENS = 6


def tokenizer_json() -> str:
    """A real ``tokenizers`` WordLevel tokenizer with [CLS] ... [SEP], serialised as tokenizer.json."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    tok = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", VOCAB["[CLS]"]), ("[SEP]", VOCAB["[SEP]"])]
    )
    return tok.to_str()


def embedding_table() -> np.ndarray:
    return np.random.default_rng(9).standard_normal((len(VOCAB), EMBED)).astype(np.float32)


def encoder_graph() -> onnx.GraphProto:
    """Mean-pooled token embeddings over the attention mask: a tiny stand-in for a sentence encoder."""
    ints = [helper.make_tensor_value_info(n, TensorProto.INT64, ["b", "s"]) for n in ("input_ids", "attention_mask")]
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["emb"]),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "axis2"], ["m3"]),
        helper.make_node("Mul", ["emb", "m3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["m3", "axis1"], ["count"], keepdims=0),
        helper.make_node("Div", ["summed", "count"], ["embedding"]),
    ]
    inits = [
        numpy_helper.from_array(embedding_table(), "table"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
    ]
    out = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["b", EMBED])
    return helper.make_graph(nodes, "encoder", ints, [out], initializer=inits)


def encoder_reference(text: str) -> tuple[np.ndarray, bool]:
    """Expected embedding computed without the server: ids by hand, truncation keeps the closing [SEP]."""
    ids = [VOCAB["[CLS]"], *(VOCAB.get(w, VOCAB["[UNK]"]) for w in text.split()), VOCAB["[SEP]"]]
    truncated = len(ids) > MAX_TOKENS
    if truncated:
        ids = [*ids[: MAX_TOKENS - 1], VOCAB["[SEP]"]]
    return embedding_table()[ids].mean(axis=0), truncated


def publish_encoder(repository: Path, name: str = "encoder", version: int = 1) -> None:
    from modelpress.serving.manifest import TokenizerSpec

    publish(
        repository, name, version, encoder_graph(), extra_files={"tokenizer.json": tokenizer_json()},
        task="embedding", tokenizer=TokenizerSpec(file="tokenizer.json", max_length=MAX_TOKENS),
        inputs=[TensorSpec(name="text", datatype="BYTES", shape=[-1])],
        outputs=[TensorSpec(name="embedding", datatype="FP32", shape=[-1, EMBED])],
    )  # fmt: skip


FRAGILE_FEATURES = 4
FRAGILE_TRIGGER = 1e6  # an input value above it makes the graph fail inside ONNX Runtime


def fragile_graph() -> onnx.GraphProto:
    """``y = x * 2`` on [-1, 4], except that a value above FRAGILE_TRIGGER makes a Reshape fail at run time.

    The graph is valid and loads (warm-up inputs are small): the Reshape's target is ``[-1, 4 - (max(x) >
    trigger)]``, so a triggering batch of one row asks ORT to fit 4 elements into rows of 3, which only fails
    when the kernel runs. That is the shape of a real fault: a model that passes every check and then breaks
    on some inputs.
    """
    nodes = [
        helper.make_node("ReduceMax", ["x"], ["peak"], keepdims=0),
        helper.make_node("Greater", ["peak", "trigger"], ["hot"]),
        helper.make_node("Cast", ["hot"], ["hot_i"], to=TensorProto.INT64),
        helper.make_node("Sub", ["four", "hot_i"], ["width"]),
        helper.make_node("Reshape", ["width", "one_dim"], ["width1"]),
        helper.make_node("Concat", ["minus_one", "width1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["reshaped"]),
        helper.make_node("Mul", ["reshaped", "two"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(FRAGILE_TRIGGER, dtype=np.float32), "trigger"),
        numpy_helper.from_array(np.array(FRAGILE_FEATURES, dtype=np.int64), "four"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "one_dim"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "minus_one"),
        numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", FRAGILE_FEATURES])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "width"])
    return helper.make_graph(nodes, "fragile", [x], [y], initializer=inits)


def publish_fragile(repository: Path, name: str = "fragile", version: int = 1) -> None:
    publish(
        repository, name, version, fragile_graph(), task="regression",
        inputs=[TensorSpec(name="x", datatype="FP32", shape=[-1, FRAGILE_FEATURES])],
        outputs=[TensorSpec(name="y", datatype="FP32", shape=[-1, FRAGILE_FEATURES])],
    )  # fmt: skip


def publish_remote(
    url: str, scratch: Path, name: str = "digits", seed: int = 0, version: int | None = None, on_file=None
) -> tuple[np.ndarray, np.ndarray]:
    """Publish the test classifier to a URL repository through the real publisher (files first, manifest last).

    Returns the weights, as :func:`publish_classifier` does.
    """
    import functools

    from modelpress.export.repository import StagedVersion, commit_all
    from modelpress.serving.manifest import read_manifest

    local = scratch / f"{name}-{seed}"
    weights = publish_classifier(local, name=name, seed=seed)
    folder = local / name / "1"
    stage = functools.partial(StagedVersion, manifest=read_manifest(folder), model_path=folder / "model.onnx")
    commit_all(url, [stage], version=version, on_file=on_file)
    return weights
