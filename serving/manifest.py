"""The model repository contract between export (writer) and serving (reader).

Layout, compatible with Triton's::

    <repository>/<model>/<version>/model.onnx        (numeric versions)
    <repository>/<model>/<version>/model.onnx.data   (external data, when the exporter wrote it)
    <repository>/<model>/<version>/tokenizer.json    (text models)
    <repository>/<model>/<version>/manifest.json     (this schema)

This module must stay free of torch and onnxruntime imports: the serving image has neither torch nor,
necessarily, the export tools.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from modelpress.common.validation import first_error

MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
SCHEMA_VERSION = 1

# Open Inference Protocol (KServe V2) tensor datatypes.
V2Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip

# A model name is one path segment: letters, digits, '.', '_', '-', not starting with '.'.
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")


class ManifestError(Exception):
    """A manifest is missing, malformed, or does not match the files beside it."""


def validate_model_name(name: str) -> str:
    """Return ``name`` if it is a safe single path segment, else raise ValueError naming the problem."""
    if not _NAME_RE.match(name) or ".." in name:
        raise ValueError(
            f"invalid model name {name!r}: use letters, digits, '.', '_' and '-' (at most 128, "
            "not starting with '.', no '/' or '..')"
        )
    return name


class TensorSpec(BaseModel):
    """One input or output tensor as served: V2 datatype and shape with -1 for dynamic dimensions."""

    model_config = ConfigDict(extra="forbid")

    name: str
    datatype: V2Datatype
    shape: list[int]

    @field_validator("shape")
    @classmethod
    def _dims_valid(cls, shape: list[int]) -> list[int]:
        if any(d < -1 or d == 0 for d in shape):
            raise ValueError(f"shape dims must be positive or -1 (dynamic), got {shape}")
        return shape


class Preprocessing(BaseModel):
    """Feature preprocessing recorded at training time, applied server-side by the V1 endpoint.

    ``standardize``: ``x' = (x - mean) / std`` element-wise over the flattened features of input 0.
    """

    model_config = ConfigDict(extra="forbid")

    type: Literal["standardize", "none"] = "none"
    mean: list[float] | None = None
    std: list[float] | None = None


class TokenizerSpec(BaseModel):
    """A Hugging Face ``tokenizers`` file travelling inside the version folder (text models)."""

    model_config = ConfigDict(extra="forbid")

    file: str = "tokenizer.json"
    max_length: int = Field(default=256, gt=0)


class EmbeddingSpec(BaseModel):
    """How an embedding model's output may be shortened (OpenAI's ``dimensions``).

    Only a model trained for it (Matryoshka representation learning) keeps its quality when its vector is cut
    to its first ``d`` values and renormalised; a manifest lists the sizes it was trained for, and the server
    refuses any other ``dimensions`` than these and the full size.
    """

    model_config = ConfigDict(extra="forbid")

    truncatable_dimensions: list[int] = Field(
        default_factory=list, description="Sizes the embedding may be cut to (then renormalised to unit length)."
    )


class BatchingConfig(BaseModel):
    """This model's dynamic batching (Triton's ``dynamic_batching`` in its config.pbtxt).

    Each field left out takes the server's setting of the same name (``MODELPRESS_MAX_BATCH_SIZE``...).
    """

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int | None = Field(default=None, ge=1, description="Most rows joined into one run.")
    max_queue_delay_us: int | None = Field(default=None, ge=0, description="Longest wait for more rows.")
    max_queue_size: int | None = Field(default=None, ge=1, description="Requests waiting; beyond it: 503.")


class PassRecord(BaseModel):
    """One step of the lineage: which pass ran, with which config, and how long it took."""

    model_config = ConfigDict(extra="allow")

    name: str
    config: dict[str, Any] = Field(default_factory=dict)
    seconds: float | None = None

    def config_hash(self) -> str:
        """Stable hash of name and config, usable as a cache key."""
        blob = json.dumps({"name": self.name, "config": self.config}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class FileRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sha256: str
    bytes: int


class SizeInfo(BaseModel):
    """Size figures. ``onnx_bytes`` includes external-data files; ``gzip_bytes`` shows what sparsity saves."""

    model_config = ConfigDict(extra="allow")

    onnx_bytes: int
    gzip_bytes: int | None = None
    parameters: int | None = None
    nonzero_parameters: int | None = None
    macs: int | None = None


class ModelManifest(BaseModel):
    """Everything serving and reports need to know about one published model version."""

    model_config = ConfigDict(extra="allow")

    schema_version: int = SCHEMA_VERSION
    name: str
    version: int = Field(ge=1)
    platform: Literal["onnx_onnxv1"] = "onnx_onnxv1"
    model_file: str = MODEL_FILE
    # generic: an imported or bare model whose outputs modelpress does not interpret (no labels, no V1 classes)
    task: Literal["classification", "regression", "embedding", "generic"]
    # unknown: a bare model.onnx served without a manifest (its precision is not read from the graph)
    precision: Literal["fp32", "fp16", "int8", "mixed", "unknown"] = "fp32"
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    labels: list[str] | None = None
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    tokenizer: TokenizerSpec | None = None
    batching: BatchingConfig | None = None
    embedding: EmbeddingSpec | None = None
    lineage: list[PassRecord] = Field(default_factory=list)
    files: dict[str, FileRecord] = Field(default_factory=dict)
    size: SizeInfo | None = None
    quality: dict[str, Any] = Field(default_factory=dict)
    tool_versions: dict[str, str] = Field(default_factory=dict)
    source: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    version_policy: str | None = Field(
        default=None,
        description="Which versions of this model servers load: latest:N, all or specific:V1,V2 (the newest "
        "served version's says; a server's MODELPRESS_VERSION_POLICY for the model wins). None: latest:1.",
    )

    @field_validator("name")
    @classmethod
    def _name_safe(cls, name: str) -> str:
        return validate_model_name(name)

    @field_validator("version_policy")
    @classmethod
    def _policy_valid(cls, value: str | None) -> str | None:
        from modelpress.serving.version_policy import VersionPolicy

        return None if value is None else str(VersionPolicy.parse(value))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_records(version_dir: Path) -> dict[str, FileRecord]:
    """Hash every file under ``version_dir`` except the manifest itself."""
    records: dict[str, FileRecord] = {}
    for path in sorted(version_dir.rglob("*")):
        if path.is_file() and path.name != MANIFEST_FILE:
            rel = path.relative_to(version_dir).as_posix()
            records[rel] = FileRecord(sha256=sha256_file(path), bytes=path.stat().st_size)
    return records


def write_manifest(manifest: ModelManifest, version_dir: Path) -> Path:
    path = version_dir / MANIFEST_FILE
    path.write_text(manifest.model_dump_json(indent=2) + "\n")
    return path


def read_manifest(version_dir: Path) -> ModelManifest:
    """Read and validate ``manifest.json`` in ``version_dir``.

    Raises:
        ManifestError: the file is missing, not JSON, or does not follow the schema.
    """
    path = version_dir / MANIFEST_FILE
    if not path.is_file():
        raise ManifestError(f"{path}: manifest missing")
    try:
        return ModelManifest.model_validate_json(path.read_bytes())
    except ValidationError as e:
        first = first_error(e)
        raise ManifestError(f"{path}: invalid manifest at '{first.where}': {first.message}") from e


def verify_files(manifest: ModelManifest, version_dir: Path) -> None:
    """Check that every file the manifest lists is present with its recorded size and sha256.

    Raises:
        ManifestError: naming the first file that is missing, truncated or changed.
    """
    if manifest.model_file not in manifest.files:
        raise ManifestError(f"{version_dir}: manifest does not list the model file {manifest.model_file!r}")
    for rel, record in manifest.files.items():
        path = version_dir / rel
        if not path.is_file():
            raise ManifestError(f"{path}: listed in the manifest but missing")
        size = path.stat().st_size
        if size != record.bytes:
            raise ManifestError(f"{path}: expected {record.bytes} bytes, found {size} (truncated or changed)")
        digest = sha256_file(path)
        if digest != record.sha256:
            raise ManifestError(f"{path}: sha256 {digest[:12]}… does not match the manifest's {record.sha256[:12]}…")


# A publish run that renames several versions into place lists each one in its journal,
# <repository>/.publish-<id>.journal (one JSON line per version, written before the rename), and deletes the
# journal once all of them are in place: that deletion is the run's commit point. Until then its versions are
# not published, so a run killed half-way never shows half of itself; the next publish rolls it back.
JOURNAL_PREFIX = ".publish-"
JOURNAL_SUFFIX = ".journal"


def read_journal(path: Path) -> set[tuple[str, int]]:
    """The (model, version) pairs a publish journal lists; a torn last line (the run died writing it) is skipped."""
    try:
        text = path.read_text()
    except OSError:  # the run finished meanwhile
        return set()
    entries = set()
    for line in text.splitlines():
        try:
            entry = json.loads(line)
            entries.add((str(entry["name"]), int(entry["version"])))
        except (ValueError, KeyError, TypeError):
            continue
    return entries


def pending_versions(repository: Path) -> set[tuple[str, int]]:
    """Versions renamed into place by publish runs that have not finished (or died): not published."""
    pending: set[tuple[str, int]] = set()
    for journal in repository.glob(f"{JOURNAL_PREFIX}*{JOURNAL_SUFFIX}"):
        pending |= read_journal(journal)
    return pending


def taken_versions(model_dir: Path) -> list[int]:
    """Every numeric version folder of one model, published or still pending (a publisher never reuses one)."""
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def list_versions(model_dir: Path) -> list[int]:
    """Published versions of one model, ascending: numeric folders not pending in a publish journal.

    Hidden and non-numeric entries are ignored.
    """
    pending = {version for name, version in pending_versions(model_dir.parent) if name == model_dir.name}
    return [v for v in taken_versions(model_dir) if v not in pending]


def list_models(repository: Path) -> list[str]:
    """Model folders in a repository (those holding at least one numeric version)."""
    if not repository.is_dir():
        return []
    return sorted(
        p.name for p in repository.iterdir() if p.is_dir() and not p.name.startswith(".") and list_versions(p)
    )
