"""A manifest for a version folder that holds only ``model.onnx`` (Triton's auto-complete of a bare model).

Inputs and outputs come from the graph as ONNX Runtime reads it (dynamic dims as -1, datatypes mapped to the
Open Inference Protocol's), the sha256 of every file is taken at load, and the manifest says it was not
published by modelpress: no labels, no preprocessing, no lineage, nothing verified. No ``onnx`` package and no
torch here: the serving image has neither.

The signature is read from the session that serves the model, not from one made for the purpose: ONNX Runtime
parses the whole file and copies every weight into each session, so a throwaway session doubled a large bare
model's load time and its peak memory. A bare version's manifest is therefore made in two steps:
:func:`manifest_to_load` gives an :class:`UnsignedManifest` (everything but inputs and outputs), and the
runtime, once its session exists, completes it with :func:`sign`.
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


class UnsignedManifest(ModelManifest):
    """A bare model's manifest before its graph is read: ``inputs`` and ``outputs`` stay empty until :func:`sign`.

    A type of its own so that nothing serves it by mistake: the repository refuses a version whose runtime left it
    unsigned.
    """


def manifest_for(name: str, version_dir: Path) -> ModelManifest:
    """The version's whole manifest: read from ``manifest.json``, or synthesized from a bare ``model.onnx``.

    For callers that do not serve the model (``modelpress compare``); the server loads with :func:`manifest_to_load`.

    Raises:
        ManifestError: the manifest is invalid, or the bare graph cannot be served (it names the tensor).
    """
    if is_bare(version_dir):
        return synthesize_manifest(name, version_dir)
    return read_manifest(version_dir)


def manifest_to_load(name: str, version_dir: Path) -> ModelManifest:
    """The manifest the server loads a version with: ``manifest.json``, or a bare model's unsigned one.

    Raises:
        ManifestError: ``manifest.json`` is invalid.
    """
    if is_bare(version_dir):
        return unsigned_manifest(name, version_dir)
    return read_manifest(version_dir)


def unsigned_manifest(name: str, version_dir: Path) -> UnsignedManifest:
    """What can be said of a bare ``model.onnx`` without ONNX Runtime: its files, and that it has no manifest."""
    return UnsignedManifest(
        name=name,
        version=int(version_dir.name),
        task="generic",
        precision="unknown",
        inputs=[],
        outputs=[],
        files=file_records(version_dir),
        source={"manifest": SYNTHESIZED, "verified": False},
    )


def sign(manifest: UnsignedManifest, path: Path, session: Any) -> ModelManifest:
    """``manifest`` completed from ``session``, an ONNX Runtime ``InferenceSession`` of the file at ``path``.

    Inputs, outputs and the producer and graph names are ONNX Runtime's view of the graph: inputs that are
    initializers are not inputs, and output shapes are what its shape inference found.

    Raises:
        ManifestError: an input/output is not a tensor (e.g. the sequence of maps skl2onnx's ZipMap makes) or has
            no known rank.
    """
    inputs = [tensor_spec_of(path, "input", arg) for arg in session.get_inputs()]
    outputs = [tensor_spec_of(path, "output", arg) for arg in session.get_outputs()]
    meta = session.get_modelmeta()
    source = {**manifest.source, "producer": meta.producer_name or None, "graph": meta.graph_name or None}
    fields = manifest.model_dump(exclude={"inputs", "outputs", "source"})
    return ModelManifest(**fields, inputs=inputs, outputs=outputs, source=source)


def synthesize_manifest(name: str, version_dir: Path) -> ModelManifest:
    """A bare ``model.onnx``'s whole manifest, from a session made only to read the graph.

    For callers that do not serve the model (``modelpress compare``): the server signs the manifest with the
    session it serves from instead (``runtime/onnx.py``), so that ONNX Runtime parses the file once.

    Raises:
        ManifestError: ONNX Runtime cannot read the file, or an input/output is not a tensor (e.g. the
            sequence of maps skl2onnx's ZipMap makes) or has no known rank.
    """
    path = version_dir / MODEL_FILE
    return sign(unsigned_manifest(name, version_dir), path, _signature_session(path))


def unreadable(path: Path, error: Exception) -> str:
    """Why a bare ``model.onnx`` is refused when ONNX Runtime cannot create a session from it."""
    return f"{path}: no manifest.json, and ONNX Runtime cannot read the graph: {error}"


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
        raise ManifestError(unreadable(path, e)) from e


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
