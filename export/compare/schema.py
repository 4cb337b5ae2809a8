"""The comparison report's JSON schema (``modelpress compare --json``), stable for other tools to read.

Schema version 1. Sizes in bytes, latencies in milliseconds, throughput in rows per second, accuracy as a
fraction in [0, 1]. A figure that could not be measured is ``null`` and the row's ``notes`` say why; a row
is never dropped.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from modelpress.common.errors import UserError
from modelpress.common.validation import first_error

REPORT_SCHEMA_VERSION = 1


class TorchBaseline(BaseModel):
    """PyTorch eager fp32 of the family's source (checkpoint, or a text model's package / folder), same run."""

    checkpoint: str | None = None
    throughput_batch: int | None = Field(default=None, description="batch of the throughput figure")
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    throughput_rows_s: float | None = None
    notes: list[str] = Field(default_factory=list)


class VariantRow(BaseModel):
    """One served model (a compression variant) and its measured figures."""

    model: str
    version: int
    family: str
    is_baseline: bool = Field(description="the family's fp32 ONNX model that size ratios are taken against")
    precision: str
    task: str
    lineage: list[str] = Field(description="names of the passes that made it, in order")
    status: Literal["ok", "failed"] = "ok"
    parameters: int | None = None
    nonzero_parameters: int | None = None
    macs: int | None = Field(default=None, description="multiply-accumulates per sample")
    onnx_bytes: int | None = Field(default=None, description="model.onnx plus external data")
    gzip_bytes: int | None = None
    size_ratio: float | None = Field(default=None, description="baseline onnx_bytes / this onnx_bytes")
    accuracy: float | None = None
    macro_f1: float | None = None
    fidelity: dict[str, float] = Field(default_factory=dict, description="embedding models: cosine etc.")
    teacher_agreement: float | None = Field(default=None, description="top-1 agreement with the source model")
    latency_p50_ms: float | None = Field(default=None, description="batch 1")
    latency_p99_ms: float | None = Field(default=None, description="batch 1")
    throughput_rows_s: float | None = Field(default=None, description="at the report's throughput batch")
    speedup_vs_torch: float | None = Field(default=None, description="torch eager p50 / this p50, batch 1")
    pareto: bool = Field(default=False, description="on the family's size/accuracy Pareto front")
    notes: list[str] = Field(default_factory=list)


class Report(BaseModel):
    schema_version: int = REPORT_SCHEMA_VERSION
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    repository: str
    threads: int
    throughput_batch: int
    machine: dict[str, Any]
    baselines: dict[str, TorchBaseline] = Field(default_factory=dict, description="family -> torch eager")
    rows: list[VariantRow]


class ReportFileError(UserError):
    """A saved report cannot be read (missing, not JSON, or not this schema); the message says which."""


def read_report(path: Path) -> Report:
    """A report saved with ``--json``.

    Raises:
        ReportFileError: naming the file and its first problem.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ReportFileError(f"{path}: cannot read the report ({e})") from e
    try:
        return Report.model_validate_json(text)
    except ValidationError as e:
        first = first_error(e)
        where = f" at '{first.where}'" if first.where else ""
        raise ReportFileError(f"{path}: not a modelpress compare report (--json){where}: {first.plain}") from e
