"""Server settings: one object, built once at the entry point, passed down (env prefix ``MODELPRESS_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from modelpress.common.errors import UserError
from modelpress.common.validation import first_error

DEFAULT_DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class SettingsError(UserError):
    """A setting (flag or ``MODELPRESS_*`` variable) is missing or invalid; the message names it."""


def _split_csv(value: Any) -> Any:
    """Accept ``"a,b"`` (how a list arrives from an env var) as well as a JSON list or a real list."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Everything the inference server can be told. Every field also reads ``MODELPRESS_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="MODELPRESS_", extra="ignore")

    repository: Path = Field(description="Model repository folder: <repository>/<model>/<version>/model.onnx.")
    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port to listen on.")
    workers: int = Field(default=1, ge=1, description="Server processes; each loads its own sessions and metrics.")
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = Field(
        default="info", description="Log level of the server and uvicorn."
    )
    providers: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["CPUExecutionProvider"],
        description="ONNX Runtime execution providers in order of preference (comma-separated in env).",
    )
    require_gpu: bool = Field(default=False, description="Fail at startup instead of falling back to CPU.")
    cuda_device_id: int = Field(default=0, ge=0, description="CUDA device for the CUDA/TensorRT providers.")
    gpu_mem_limit_bytes: int | None = Field(default=None, gt=0, description="CUDA arena size limit in bytes.")
    arena_extend_strategy: Literal["kNextPowerOfTwo", "kSameAsRequested"] = Field(
        default="kNextPowerOfTwo", description="How the CUDA memory arena grows."
    )
    intra_op_threads: int = Field(default=0, ge=0, description="Threads inside one operator (0 = ORT default).")
    inter_op_threads: int = Field(default=0, ge=0, description="Threads across operators (0 = ORT default).")
    shared_thread_pool: bool | None = Field(
        default=None,
        description="One ONNX Runtime intra/inter-op thread pool for every model of the process (ORT's global "
        "pools, sized by intra_op_threads / inter_op_threads), whose threads spin briefly after a run: batch-1 "
        "latency near the HTTP cost (docs/benchmarks.md). False: a pool per model. Unset: shared, unless "
        "allow_spinning is false or the process has a CPU quota (a Kubernetes CPU limit), where spinning is "
        "throttled.",
    )
    allow_spinning: bool | None = Field(
        default=None,
        description="Let idle ONNX Runtime pool threads spin for a moment before they sleep (ORT's default). "
        "Unset: they spin on the shared pool and sleep in pools per model, where one model's spinning pool "
        "would take the cores from the next model's run (and under a CPU quota). False with "
        "shared_thread_pool=true is refused: ORT's shared pool always spins.",
    )
    cpu_mem_arena: bool = Field(
        default=False,
        description="ONNX Runtime's CPU memory arena per session (ORT's own default is on). Off, a session's "
        "run buffers are malloc'd and freed per run instead of kept for good in an arena per model: 40 MiB "
        "less RSS over the demo repository, no latency cost measured at batch 1 or 32 (docs/benchmarks.md).",
    )
    mem_pattern: bool = Field(
        default=True, description="ONNX Runtime's memory-pattern planning per session (ORT's default)."
    )
    shared_cpu_allocator: bool = Field(
        default=False,
        description="One CPU arena for every session of the process (ORT's environment allocator; it replaces "
        "cpu_mem_arena's per-session choice), so memory a warm-up or a burst leaves in an arena is held once.",
    )
    share_weights: bool = Field(
        default=True,
        description="Hold an embedding table once when several CPU sessions carry the same bytes (a student "
        "and its teacher; their int8 variants), and one tokenizer per tokenizer file: 80 MiB less RSS over the "
        "demo repository (docs/benchmarks.md).",
    )
    compute_threads: int = Field(default=2, ge=1, description="Thread pool running session.run (bounded).")
    dynamic_batching: bool = Field(
        default=True,
        description="Join requests into batches. Off, every model runs each request alone and at once, whatever "
        "its manifest's batching says (the benchmarks' 'batching off').",
    )
    max_batch_size: int = Field(default=64, ge=1, description="Most rows joined into one session.run.")
    max_queue_delay_us: int = Field(default=500, ge=0, description="Longest wait for more rows before a run.")
    wait_when_idle: bool = Field(
        default=False,
        description="Wait max_queue_delay_us even when the model is idle (otherwise a lone request runs at once).",
    )
    max_queue_size: int = Field(default=256, ge=1, description="Requests waiting per model; beyond it: 503.")
    fast_path: bool = Field(
        default=True,
        description="Answer the inference routes (V2 infer, V1 predict) in one ASGI layer ahead of FastAPI's "
        "routing and middleware: the same answers for less CPU per request. False: through FastAPI.",
    )
    request_timeout_s: float = Field(default=30.0, gt=0, description="Longest an inference may take; then 504.")
    max_body_bytes: int = Field(default=64 * 1024 * 1024, gt=0, description="Largest request body; beyond: 413.")
    max_tensor_elements: int = Field(
        default=16 * 1024 * 1024, gt=0, description="Most elements in one input tensor (shape product); beyond: 413."
    )
    max_batch_rows: int = Field(
        default=4096, gt=0, description="Most rows in one request (first dimension, or V1 instances); beyond: 413."
    )
    repository_api: bool = Field(
        default=False, description="Enable POST /v2/repository/... (load, unload); refused without auth."
    )
    auth_token: SecretStr | None = Field(
        default=None, description="Bearer token clients must send (Authorization: Bearer <token>); unset: no auth."
    )
    auth_token_file: Path | None = Field(
        default=None, description="File holding the bearer token (e.g. a mounted Kubernetes Secret), re-read on change."
    )
    auth_health: bool = Field(default=False, description="Require the token on /v2/health/* too (probes send none).")
    auth_metrics: bool = Field(default=False, description="Require the token on /metrics too.")
    metrics_buckets: Annotated[list[float] | None, NoDecode] = Field(
        default=None, description="Buckets (seconds) of the duration histograms (comma-separated in env)."
    )
    drain_timeout_s: float = Field(default=30.0, ge=0, description="On SIGTERM, longest wait for in-flight work.")
    drain_grace_s: float = Field(
        default=0.0, ge=0, description="On SIGTERM, least time to keep answering 503 so readiness can propagate."
    )
    allow_nan: bool = Field(default=False, description="Accept NaN/Inf in floating-point inputs.")
    warmup_runs: int = Field(default=2, ge=0, description="Warm-up session.run calls per batch size at load.")

    @field_validator("providers", mode="before")
    @classmethod
    def _providers_csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("metrics_buckets", mode="before")
    @classmethod
    def _buckets_csv(cls, value: Any) -> Any:
        return _split_csv(value) if value not in (None, "") else None

    @field_validator("providers")
    @classmethod
    def _providers_nonempty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one execution provider is needed, e.g. CPUExecutionProvider")
        return value

    @field_validator("metrics_buckets")
    @classmethod
    def _buckets_sorted(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (not value or sorted(value) != value or len(set(value)) != len(value)):
            raise ValueError(f"metrics buckets must be a non-empty strictly increasing list, got {value}")
        return value

    @model_validator(mode="after")
    def _spinning_consistent(self) -> Settings:
        if self.shared_thread_pool and self.allow_spinning is False:
            raise ValueError(
                "allow_spinning=false needs shared_thread_pool=false (MODELPRESS_SHARED_THREAD_POOL=false): "
                "ONNX Runtime's shared thread pool always lets its threads spin"
            )
        return self

    def uses_shared_thread_pool(self, cpu_quota: float | None = None) -> bool:
        """shared_thread_pool as set; else as allow_spinning says; else shared unless the process has a CPU quota.

        Args:
            cpu_quota: CPUs allowed by this process's cgroup quota (``serving/runtime/cpu_quota.py``), None if none.
        """
        if self.shared_thread_pool is not None:
            return self.shared_thread_pool
        if self.allow_spinning is not None:
            return self.allow_spinning
        return cpu_quota is None  # spinning burns quota, and a throttled server stalls for the rest of the period

    def spins(self, cpu_quota: float | None = None) -> bool:
        """allow_spinning as set, else what suits the pools in use: spin on the shared one, sleep in per-model ones."""
        if self.allow_spinning is not None:
            return self.allow_spinning
        return self.uses_shared_thread_pool(cpu_quota)

    @model_validator(mode="after")
    def _auth_consistent(self) -> Settings:
        if self.auth_token is not None and self.auth_token_file is not None:
            raise ValueError("set auth_token or auth_token_file, not both")
        if self.repository_api and not self.auth_enabled():
            raise ValueError(
                "the repository API (load/unload) needs auth: set MODELPRESS_AUTH_TOKEN or MODELPRESS_AUTH_TOKEN_FILE"
            )
        return self

    def auth_enabled(self) -> bool:
        return self.auth_token is not None or self.auth_token_file is not None

    def duration_buckets(self) -> tuple[float, ...]:
        return tuple(self.metrics_buckets) if self.metrics_buckets else DEFAULT_DURATION_BUCKETS


def load_settings(**overrides: Any) -> Settings:
    """``Settings`` from the environment with ``overrides`` (CLI flags) on top.

    Raises:
        SettingsError: one line naming the first bad setting, e.g. ``MODELPRESS_PORT: ...``.
    """
    try:
        return Settings(**overrides)
    except ValidationError as e:
        first = first_error(e)
        field, message = first.where, first.plain
        if not field:  # a rule across several settings (e.g. the repository API without auth)
            raise SettingsError(f"settings: {message}") from e
        raise SettingsError(f"setting '{field}' (MODELPRESS_{field.upper()}): {message}") from e
