"""A manifest for a version folder that holds only ``model.onnx`` (Triton's auto-complete of a bare model).

Inputs and outputs come from the graph as ONNX Runtime reads it (dynamic dims as -1, datatypes mapped to the
Open Inference Protocol's), the sha256 of every file is taken at load, and the manifest says it was not
published by modelpress: no labels, no preprocessing, no lineage, nothing verified. No ``onnx`` package and no
torch here: the serving image has neither.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelpress.serving.manifest import (
    MANIFEST_FILE,
    MODEL_FILE,
    ManifestError,
    ModelManifest,
    TensorSpec,
    file_records,
    read_manifest,
)
from modelpress.serving.protocol.datatypes import ORT_TO_V2
from modelpress.serving.runtime.thread_pools import choose_pool

# ``source.manifest`` of a synthesized manifest; the model metadata endpoint reports it.
SYNTHESIZED = "synthesized from the graph at load (no manifest.json)"
ZIPMAP_HINT = (
    "the Open Inference Protocol serves tensors only; export the model without it "
    "(skl2onnx: to_onnx(clf, X, options={id(clf): {'zipmap': False}}) gives a probabilities tensor)"
)


def is_bare(version_dir: Path) -> bool:
    """A version folder with ``model.onnx`` and no ``manifest.json``."""
    return (version_dir / MODEL_FILE).is_file() and not (version_dir / MANIFEST_FILE).exists()


def manifest_for(name: str, version_dir: Path) -> ModelManifest:
    """The version's manifest: read from ``manifest.json``, or synthesized from a bare ``model.onnx``.

    Raises:
        ManifestError: the manifest is invalid, or the bare graph cannot be served (it names the tensor).
    """
    if is_bare(version_dir):
        return synthesize_manifest(name, version_dir)
    return read_manifest(version_dir)


def synthesize_manifest(name: str, version_dir: Path) -> ModelManifest:
    """Describe a bare ``model.onnx`` from the graph ONNX Runtime loads.

    Raises:
        ManifestError: ONNX Runtime cannot read the file, or an input/output is not a tensor (e.g. the
            sequence of maps skl2onnx's ZipMap makes) or has no known rank.
    """
    path = version_dir / MODEL_FILE
    session = _signature_session(path)
    inputs = [tensor_spec_of(path, "input", arg) for arg in session.get_inputs()]
    outputs = [tensor_spec_of(path, "output", arg) for arg in session.get_outputs()]
    meta = session.get_modelmeta()
    return ModelManifest(
        name=name,
        version=int(version_dir.name),
        task="generic",
        precision="unknown",
        inputs=inputs,
        outputs=outputs,
        files=file_records(version_dir),
        source={
            "manifest": SYNTHESIZED,
            "verified": False,
            "producer": meta.producer_name or None,
            "graph": meta.graph_name or None,
        },
    )


def metadata_parameters(manifest: ModelManifest) -> dict[str, Any]:
    """What the model metadata endpoint adds for a model served without a manifest (empty otherwise)."""
    if manifest.source.get("manifest") != SYNTHESIZED:
        return {}
    return {"manifest": False, "verified": False, "sha256": manifest.files[manifest.model_file].sha256}


def _signature_session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Only the signature is read here: no optimisation, one thread, quiet; the runtime makes the real session.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if choose_pool(False, 1, 1).shared:  # once the process has ORT's global pools, every session must use them
        options.use_per_session_threads = False
    else:
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own pybind types for files that are not (valid) ONNX
        raise ManifestError(f"{path}: no manifest.json, and ONNX Runtime cannot read the graph: {e}") from e


def tensor_spec_of(path: Path, kind: str, arg: Any) -> TensorSpec:
    """The served spec of one ONNX Runtime ``NodeArg``; ManifestError for what the protocol cannot carry."""
    datatype = ORT_TO_V2.get(arg.type)
    if datatype is None:
        raise ManifestError(f"{path}: {kind} '{arg.name}' is {arg.type}, not a tensor: {ZIPMAP_HINT}")
    if arg.shape is None:
        raise ManifestError(f"{path}: {kind} '{arg.name}' has no known rank; give it a shape in the graph")
    # Symbolic dims come as names, unknown ones as None; ONNX's 0 in a declared shape means unknown too.
    shape = [d if isinstance(d, int) and d > 0 else -1 for d in arg.shape]
    return TensorSpec(name=arg.name, datatype=datatype, shape=shape)
