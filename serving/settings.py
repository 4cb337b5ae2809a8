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

    repository: str = Field(
        description="Model repository: a folder, or a URL (s3://bucket/prefix, gs://..., az://..., file://...) "
        "holding <model>/<version>/model.onnx."
    )
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
        "run buffers are malloc'd and freed per run instead of kept for good in an arena per model: less "
        "resident memory with many models (measured in docs/benchmarks.md).",
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
        "and its teacher; their int8 variants), and one tokenizer per tokenizer file (savings measured in "
        "docs/benchmarks.md).",
    )
    compute_threads: int = Field(default=2, ge=1, description="Thread pool running session.run (bounded).")
    batches_in_flight: int | None = Field(
        default=None,
        ge=1,
        description="Batches of one model running at once (as Triton's instance count), at most compute_threads. "
        "Unset: for a model that joins requests, as many as fit side by side on the CPUs with intra_op_threads "
        "threads each, so one when a run already spans them (intra_op_threads 0, ORT's default): the next batch "
        "forms while it runs instead of fighting it for the cores; compute_threads for a model that does not "
        "join requests (benchmarks/results/20261207-batches-in-flight.md).",
    )
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
    gc_freeze: bool = Field(
        default=True,
        description="Once the models are loaded, move every object the start left into the garbage collector's "
        "permanent generation (gc.freeze), so full collections under load do not walk them again (REST's p99 at "
        "c=32: 9-30 ms against 56-65 ms, docs/serving.md). False: collect as Python does by default.",
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
    grpc_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Also serve the Open Inference Protocol over gRPC on this port (same host, same process and "
        "models); unset: no gRPC. 0 picks a free port (logged).",
    )
    tls_cert: Path | None = Field(
        default=None,
        description="PEM certificate chain: serve REST and gRPC over TLS (with tls_key); re-read when it changes.",
    )
    tls_key: Path | None = Field(default=None, description="PEM private key of tls_cert.")
    tls_client_ca: Path | None = Field(
        default=None,
        description="PEM CA bundle: require a client certificate signed by it (mutual TLS); needs tls_cert.",
    )
    tls_reload_s: float = Field(
        default=10.0,
        gt=0,
        description="How often the REST and gRPC servers check the TLS files for a change (seconds).",
    )
    ui: bool = Field(
        default=True, description="Serve the page at /ui (models, live figures, try-it panels); behind auth when on."
    )
    explain_max_evaluations: int = Field(
        default=256, ge=2, description="Most model rows one :explain request may run (occlusion's cost bound)."
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments for the fsspec filesystem of a URL repository (JSON object in env), e.g. "
        '{"endpoint_url": "http://minio:9000"}. Credentials belong in the SDK\'s own variables or a workload '
        "identity; nothing here is ever logged.",
    )
    cache_dir: Path | None = Field(
        default=None,
        description="Where versions of a URL repository are downloaded and verified before loading "
        "(default: <user cache dir>/modelpress/repositories).",
    )
    poll_interval: float = Field(
        default=0.0,
        ge=0,
        description="Rescan the repository every this many seconds and roll versions in and out (0: scan at "
        "startup only). Triton's poll mode.",
    )
    version_policy: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Versions served per model: MODEL=latest:N|all|specific:V1,V2, ';'-separated; '*' for every "
        "other model (default latest:1), e.g. 'digits=latest:2;*=latest:1'.",
    )
    strict_readiness: bool = Field(
        default=False,
        description="/v2/health/ready only once every model in the repository serves. Off (the default), one "
        "model failing to load leaves the others serving and the server ready; per-model readiness at "
        "/v2/models/{name}/ready (docs/deploy.md says why).",
    )
    wait_for_repository: float = Field(
        default=0.0,
        ge=0,
        description="At startup, retry an unreachable repository with backoff for up to this many seconds "
        "(0: fail at once with exit code 2).",
    )

    @field_validator("repository", mode="before")
    @classmethod
    def _repository_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, Path) else value

    @field_validator("version_policy", mode="before")
    @classmethod
    def _policies(cls, value: Any) -> Any:
        from modelpress.serving.version_policy import parse_policies

        if isinstance(value, str) and value.strip().startswith("{"):
            import json

            value = json.loads(value)
        if isinstance(value, str):
            return parse_policies(value)
        if isinstance(value, dict):
            return parse_policies(";".join(f"{k}={v}" for k, v in value.items()))
        return value

    metrics_dir: Path | None = Field(
        default=None,
        description="With workers > 1: the folder where the workers share their metrics, so every /metrics scrape "
        "and /v2/models/{m}/stats covers the whole server (prometheus-client's multiprocess mode; emptied at start). "
        "Unset: a temporary folder per start, removed at exit.",
    )
    tracing: bool | None = Field(
        default=None,
        description="OpenTelemetry spans per inference request (queue wait and compute as children), exported over "
        "OTLP/HTTP as the standard OTEL_* variables say; needs the otel extra. Unset: on when "
        "OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set.",
    )
    cudnn_conv_algo_search: Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"] | None = Field(
        default=None,
        description="CUDA provider: how cuDNN picks convolution algorithms (ORT's default EXHAUSTIVE benchmarks "
        "them at the first run of each shape; HEURISTIC starts faster).",
    )
    trt_fp16: bool = Field(default=False, description="TensorRT provider: let TensorRT run layers in fp16.")
    trt_engine_cache_dir: Path | None = Field(
        default=None,
        description="TensorRT provider: folder for built engines and timing caches (a volume that outlives the "
        "pod), so a restart loads engines instead of building them again. Created if missing; must be writable.",
    )
    trt_max_workspace_bytes: int | None = Field(
        default=None, gt=0, description="TensorRT provider: most GPU memory a layer may use while it runs."
    )
    length_grouping: bool = Field(
        default=True,
        description="Text models: run a batch of texts as runs of similar token length instead of one run padded "
        "to its longest text, when the padding saved outweighs the cost of the extra runs "
        "(serving/batching/lengths.py).",
    )
    length_group_overhead_tokens: int = Field(
        default=16,
        ge=1,
        description="Text models: the fixed cost of one more run, in tokens' worth of compute, when a batch is "
        "split by length (higher: fewer, more padded runs).",
    )
    io_binding: bool | None = Field(
        default=None,
        description="Bind inputs and outputs with ONNX Runtime's IOBinding (one copy back at the end). Unset: on "
        "for sessions whose first provider is a GPU one (CUDA, TensorRT); false: never. No effect on CPU.",
    )

    @field_validator("auth_token", "auth_token_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # `MODELPRESS_AUTH_TOKEN_FILE=` (a template's blank line) would otherwise be the path "." or an empty token.
        return None if value == "" else value  # blank but not empty is a mistake, refused as an empty token

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

    def model_batches_in_flight(self, cpus: float, joins_requests: bool) -> int:
        """Batches one model may run at once: ``batches_in_flight`` when set, else chosen for the model.

        A model that joins requests runs as many batches as fit side by side on ``cpus`` CPUs, each with
        ``intra_op_threads`` threads (0, ORT's default, is a thread per core: one run spans them), and its next
        batch forms while they run. One that runs requests one by one (batching off, or a fixed batch size) keeps
        every compute thread: nothing would form meanwhile, and the cores would idle between its runs.
        """
        if self.batches_in_flight is not None:
            return min(self.batches_in_flight, self.compute_threads)
        if not joins_requests:
            return self.compute_threads
        if self.intra_op_threads == 0:
            return 1
        return max(1, min(self.compute_threads, int(cpus // self.intra_op_threads)))

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

    @model_validator(mode="after")
    def _tls_consistent(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both tls_cert and tls_key (MODELPRESS_TLS_CERT, MODELPRESS_TLS_KEY)")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca (mutual TLS) needs tls_cert and tls_key: the server must speak TLS")
        return self

    def tls_enabled(self) -> bool:
        return self.tls_cert is not None

    def repository_cache_dir(self) -> Path:
        """cache_dir, else ``$XDG_CACHE_HOME/modelpress/repositories`` (``~/.cache`` when unset)."""
        if self.cache_dir is not None:
            return self.cache_dir
        import os

        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modelpress" / "repositories"

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
