"""Transport-neutral inference: find the model, validate the tensors against it, batch, run, account.

The REST routers translate HTTP to these calls and back; nothing here knows about HTTP except the status
carried by the errors it raises.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from modelpress.serving.batching.batcher import BatcherClosedError, BatchResult
from modelpress.serving.deadlines import Deadlines
from modelpress.serving.errors import BadRequestError, InternalError, ServingError, UnavailableError
from modelpress.serving.graph_manifest import metadata_parameters
from modelpress.serving.manifest import TensorSpec
from modelpress.serving.metrics import Metrics, outcome_of
from modelpress.serving.protocol.classification import classification_counts, top_classes
from modelpress.serving.protocol.codec import decode_input, shape_str
from modelpress.serving.protocol.model_config import (
    DynamicBatching,
    InstanceGroup,
    ModelConfig,
    config_tensor,
    config_version_policy,
)
from modelpress.serving.protocol.types import (
    InferenceRequest,
    InferenceStats,
    MetadataTensor,
    ModelMetadata,
    ModelStatistics,
    ModelStatisticsResponse,
    RequestInput,
    ServerMetadata,
    StatDuration,
)
from modelpress.serving.protocol.v1 import instances_to_input, predictions, standardize
from modelpress.serving.repository import ModelRepository
from modelpress.serving.runtime.base import TRUNCATED
from modelpress.serving.runtime.providers import uses_gpu
from modelpress.serving.served import PLATFORM, ServedModel
from modelpress.serving.settings import Settings
from modelpress.serving.stats import ModelStats

if TYPE_CHECKING:
    from modelpress.serving.tracing import Tracing

SERVER_NAME = "modelpress"
EXTENSIONS = ["binary_tensor_data", "classification", "model_configuration", "model_repository", "statistics"]


@dataclass
class Inference:
    """A finished inference: the model that ran it and the requested outputs, in request order."""

    served: ServedModel
    outputs: dict[str, np.ndarray]
    rows: int
    parameters: dict = field(default_factory=dict)
    side: dict[str, np.ndarray] = field(default_factory=dict)  # the runtime's side outputs (e.g. token counts)


@dataclass(frozen=True)
class V1Prediction:
    """A finished V1 ``:predict``: the model that ran it, one prediction per instance, response parameters."""

    served: ServedModel
    predictions: list
    parameters: dict = field(default_factory=dict)


def shape_matches(got: list[int], spec: list[int]) -> bool:
    return len(got) == len(spec) and all(s == -1 or g == s for g, s in zip(got, spec, strict=True))


class DataPlane:
    def __init__(self, repository: ModelRepository, metrics: Metrics, settings: Settings, version: str) -> None:
        self.repository = repository
        self.metrics = metrics
        self.settings = settings
        self.version = version
        self.draining = False
        self.started = False
        self.deadlines = Deadlines()
        self.tracing: Tracing | None = None  # set by the app when tracing is on (serving/tracing.py)

    # ---- health and metadata ------------------------------------------------------------------------------
    def ready(self) -> bool:
        return self.started and not self.draining and self.repository.ready()

    def server_metadata(self) -> ServerMetadata:
        return ServerMetadata(name=SERVER_NAME, version=self.version, extensions=EXTENSIONS)

    def model_metadata(self, name: str, version: str | None = None) -> ModelMetadata:
        served = self.repository.get(name, version)
        m = served.manifest
        params = {
            "providers": served.runtime.providers,
            "task": m.task,
            "precision": m.precision,
            "max_batch_size": _max_batch_size(served),
        }
        if m.labels:
            params["labels"] = m.labels
        # What a person (and the /ui page) wants to know of a variant: how it was made, how big, how good.
        params["lineage"] = [step.name for step in m.lineage]
        params["size_bytes"] = served.size_bytes
        params["quality"] = m.quality
        if "family" in m.source:
            params["family"] = m.source["family"]
        params.update(metadata_parameters(m))  # a bare model.onnx: says it has no manifest and is unverified
        return ModelMetadata(
            name=m.name,
            versions=self.repository.versions(name) if version is None else [served.version],
            platform=PLATFORM,
            inputs=[MetadataTensor(name=s.name, datatype=s.datatype, shape=s.shape) for s in m.inputs],
            outputs=[MetadataTensor(name=s.name, datatype=s.datatype, shape=s.shape) for s in m.outputs],
            parameters=params,
        )

    def model_config(self, name: str, version: str | None = None) -> ModelConfig:
        """Triton's model configuration extension: the served version as Triton's ``config.pbtxt`` would say it."""
        served = self.repository.get(name, version)
        m = served.manifest
        max_batch = _max_batch_size(served)
        batched = max_batch > 0
        batcher = served.batcher
        on_gpu = uses_gpu(served.runtime.providers)
        return ModelConfig(
            name=m.name,
            version_policy=config_version_policy(self.repository.version_policy(name)),
            max_batch_size=max_batch,
            input=[config_tensor(s.name, s.datatype, s.shape, batched) for s in m.inputs],
            output=[config_tensor(s.name, s.datatype, s.shape, batched) for s in m.outputs],
            dynamic_batching=(
                DynamicBatching(max_queue_delay_microseconds=round(batcher.max_queue_delay_s * 1e6))
                if batcher is not None and max_batch > 1
                else None
            ),
            instance_group=[
                InstanceGroup(
                    name=m.name,
                    kind="KIND_GPU" if on_gpu else "KIND_CPU",
                    count=batcher.max_concurrent_batches if batcher is not None else 1,
                    gpus=[self.settings.cuda_device_id] if on_gpu else [],
                )
            ],
            default_model_filename=m.model_file,
        )

    def model_ready(self, name: str, version: str | None = None) -> bool:
        served = self.repository.get(name, version)
        return not self.draining and served.runtime.ready

    def statistics(self, name: str | None, version: str | None = None) -> ModelStatisticsResponse:
        """Triton's statistics extension for one model, or for every served model when ``name`` is None."""
        served = [self.repository.get(name, version)] if name is not None else self.repository.served()
        workers = self.metrics.workers_stats
        return ModelStatisticsResponse(
            model_stats=[_model_statistics(s, workers(s.name, s.version) or s.stats) for s in served]
        )

    # ---- inference ----------------------------------------------------------------------------------------
    def resolve(self, name: str, version: str | None) -> ServedModel:
        if self.draining:
            raise UnavailableError("server is shutting down", headers={"Retry-After": "1"})
        return self.repository.get(name, version)

    async def infer(
        self,
        name: str,
        version: str | None,
        request: InferenceRequest,
        binary: dict[str, memoryview],
        deadline_s: float | None = None,
    ) -> Inference:
        """Validate a V2 request against the model, run it through the batcher, return the requested outputs.

        ``deadline_s``: seconds the caller's transport still allows (a gRPC deadline), when it says.
        """
        served = self.resolve(name, version)
        feeds = {item.name: item for item in request.inputs}
        _check_input_names(served, [item.name for item in request.inputs])
        arrays = {n: self._decode(served, served_spec(served, n), item, binary.get(n)) for n, item in feeds.items()}
        outputs = _requested_outputs(served, [o.name for o in request.outputs] if request.outputs else None)
        classes = classification_counts(request.outputs, served.manifest.outputs)
        timeout_s = _client_timeout_s(request.parameters)
        if deadline_s is not None and (timeout_s is None or deadline_s < timeout_s):
            timeout_s = max(deadline_s, 0.0)
        result = await self._run(served, arrays, outputs, timeout_s, version)
        labels = result.served.manifest.labels
        for name, count in classes.items():  # Triton's classification extension: top classes instead of values
            result.outputs[name] = top_classes(result.outputs[name], count, labels, result.served.batchable)
        return result

    async def predict(self, name: str, version: str | None, instances: list) -> V1Prediction:
        """V1: instances → input tensors (with the manifest's preprocessing) → predictions per instance."""
        served = self.resolve(name, version)
        arrays = self._v1_inputs(served, instances)
        outputs = [o.name for o in served.manifest.outputs]
        result = await self._run(served, arrays, outputs, version=version)
        return V1Prediction(served, predictions(served.manifest, result.outputs), result.parameters)

    async def run_arrays(self, served: ServedModel, arrays: dict[str, np.ndarray], outputs: list[str]) -> Inference:
        """Run input tensors an adapter built itself (e.g. texts from an embeddings request) like any request."""
        return await self._run(served, arrays, outputs)

    def _decode(
        self, served: ServedModel, spec: TensorSpec, item: RequestInput, binary: memoryview | None
    ) -> np.ndarray:
        if item.datatype != spec.datatype or not shape_matches(item.shape, spec.shape):
            raise BadRequestError(
                f"input '{item.name}': expected shape {shape_str(spec.shape)} {spec.datatype}, "
                f"got {shape_str(item.shape)} {item.datatype}"
            )
        arr = decode_input(item, binary)
        self._check_finite(item.name, arr)
        return arr

    def _check_finite(self, name: str, arr: np.ndarray) -> None:
        if self.settings.allow_nan or arr.dtype.kind != "f" or arr.size == 0:
            return
        finite = np.isfinite(arr)
        if not finite.all():
            where = int(np.flatnonzero(~finite.reshape(-1))[0])
            raise BadRequestError(
                f"input '{name}': NaN or infinity at flat index {where} (finite numbers expected; "
                "set MODELPRESS_ALLOW_NAN=true to allow)"
            )

    async def _run(
        self,
        served: ServedModel,
        arrays: dict[str, np.ndarray],
        outputs: list[str],
        timeout_s: float | None = None,
        version: str | None = None,
    ) -> Inference:
        """Run through the batcher; ``version`` is what the request named (None: whatever is newest)."""
        rows = _rows(served, arrays)
        served.runtime.validate(arrays)
        side = served.runtime.side_outputs
        outputs = [*outputs, *side]
        for attempt in range(2):  # a version swapped out between lookup and submit: retry once on the new one
            batcher = served.batcher
            if batcher is None:
                raise InternalError(f"model '{served.name}' has no batcher")
            try:
                future = batcher.submit(arrays, outputs, rows)
            except BatcherClosedError:
                if attempt:
                    raise
                served = self.repository.get(served.name, version)  # a named version must still be served
                continue
            result = await self._wait(served, future, timeout_s)
            values = dict(result.outputs)
            extra = {name: values.pop(name) for name in side}
            return Inference(served, values, rows, _side_parameters(extra), extra)
        raise InternalError("unreachable")  # pragma: no cover

    async def _wait(self, served: ServedModel, future: asyncio.Future, client_s: float | None) -> BatchResult:
        """Await the batch result; past the timeout the future fails (and the batcher skips it).

        The timeout is request_timeout_s, or the client's shorter ``parameters.timeout``. One timer for every
        waiting request (:class:`Deadlines`), rather than ``asyncio.wait_for`` (a task per request) or a timer
        handle per request, keeps the timeout nearly free on the hot path.
        """
        timeout = self.settings.request_timeout_s
        message = f"model '{served.name}': no result within request_timeout_s={timeout}"
        if client_s is not None and client_s < timeout:
            timeout = client_s
            message = f"model '{served.name}': no result within the request's timeout of {int(client_s * 1e6)} us"
        self.deadlines.add(future, timeout, message)
        try:
            result: BatchResult = await future
        finally:
            self.deadlines.discard(future)
        served.stats.queued(result.queue_s)
        served.series.queue_duration.observe(result.queue_s)
        if self.tracing is not None:
            self.tracing.batch_spans(result)
        return result

    def _v1_inputs(self, served: ServedModel, instances: list) -> dict[str, np.ndarray]:
        specs = served.manifest.inputs
        if len(specs) == 1:
            columns = {specs[0].name: instances}
        else:
            if not all(isinstance(i, dict) for i in instances):
                raise BadRequestError(
                    f"model '{served.name}' has inputs {[s.name for s in specs]}: each instance must be an object "
                    "with one entry per input"
                )
            _check_input_names(served, list(dict.fromkeys(k for inst in instances for k in inst)))
            try:
                columns = {s.name: [inst[s.name] for inst in instances] for s in specs}
            except KeyError as e:
                raise BadRequestError(f"an instance lacks input {e.args[0]!r}") from e
        arrays = {}
        for spec in specs:
            item = instances_to_input(spec, columns[spec.name])
            arr = self._decode(served, spec, item, None)
            if spec is specs[0]:
                arr = standardize(served.manifest, arr)
            arrays[spec.name] = arr
        return arrays

    # ---- accounting ---------------------------------------------------------------------------------------
    def label_of(self, name: str) -> tuple[str, str]:
        """Metric labels for a request: unknown model names collapse into one series (bounded cardinality)."""
        try:
            return name, self.repository.get(name).version
        except ServingError:
            return ("_unknown", "") if not self.repository.knows(name) else (name, "")

    def record(
        self, name: str, protocol: str, status: int, seconds: float, rows: int, served: ServedModel | None
    ) -> None:
        outcome = outcome_of(status)
        if served is not None:
            served.series.request_done(protocol, outcome, seconds, rows)
            served.stats.request_done(status < 400, seconds)
            return
        model, version = self.label_of(name)
        self.metrics.requests.labels(model, version, protocol, outcome).inc()
        self.metrics.request_duration.labels(model, version, protocol, outcome).observe(seconds)
        if rows:
            self.metrics.inferences.labels(model, version, outcome).inc(rows)


def _client_timeout_s(parameters: dict | None) -> float | None:
    """Triton's ``parameters.timeout`` (microseconds, as tritonclient sends it) in seconds, when given."""
    if not parameters or "timeout" not in parameters:
        return None
    value = parameters["timeout"]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BadRequestError(f"parameters.timeout must be a positive integer of microseconds, got {value!r}")
    return value / 1e6


def _model_statistics(served: ServedModel, s: ModelStats) -> ModelStatistics:
    # Feeding the run and taking its outputs happen inside the timed run: compute_input and compute_output have
    # no time of their own, but the same count as compute_infer, as Triton's clients expect (perf_analyzer
    # refuses statistics whose three compute counts differ).
    inside = StatDuration(count=s.compute_count, ns=0)
    stats = InferenceStats(
        success=StatDuration(count=s.success_count, ns=s.success_ns),
        fail=StatDuration(count=s.fail_count, ns=s.fail_ns),
        queue=StatDuration(count=s.queue_count, ns=s.queue_ns),
        compute_input=inside,
        compute_infer=StatDuration(count=s.compute_count, ns=s.compute_ns),
        compute_output=inside,
    )
    return ModelStatistics(
        name=served.name,
        version=served.version,
        last_inference=s.last_inference_ms,
        inference_count=s.inference_count,
        execution_count=s.execution_count,
        inference_stats=stats,
    )


def _side_parameters(extra: dict[str, np.ndarray]) -> dict:
    """Side outputs as response parameters: rows whose text was truncated, when any were."""
    params = {}
    if TRUNCATED in extra and extra[TRUNCATED].any():
        params["truncated"] = np.flatnonzero(extra[TRUNCATED]).tolist()
    return params


def served_spec(served: ServedModel, name: str) -> TensorSpec:
    return next(s for s in served.manifest.inputs if s.name == name)


def _check_input_names(served: ServedModel, names: list[str]) -> None:
    expected = [s.name for s in served.manifest.inputs]
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise BadRequestError(f"input '{n}' is given more than once")
        seen.add(n)
        if n not in expected:
            raise BadRequestError(f"unexpected input '{n}': model '{served.name}' expects inputs {expected}")
    missing = [n for n in expected if n not in seen]
    if missing:
        raise BadRequestError(
            f"missing input(s) {missing}: model '{served.name}' expects inputs {expected}, got {names}"
        )


def _requested_outputs(served: ServedModel, names: list[str] | None) -> list[str]:
    known = [s.name for s in served.manifest.outputs]
    if names is None:
        return known
    for n in names:
        if n not in known:
            raise BadRequestError(f"unknown output '{n}': model '{served.name}' has outputs {known}")
    if len(set(names)) != len(names):
        raise BadRequestError(f"an output is requested more than once: {names}")
    return names


def _rows(served: ServedModel, arrays: dict[str, np.ndarray]) -> int:
    if not served.batchable:
        return 1
    counts = {n: a.shape[0] for n, a in arrays.items()}
    if len(set(counts.values())) > 1:
        raise BadRequestError(f"inputs disagree on the batch dimension (first dim): {counts}")
    return next(iter(counts.values()))


def _max_batch_size(served: ServedModel) -> int:
    """Rows the model's batcher joins into one run; 0 when its tensors have no batch dimension (Triton's meaning)."""
    return served.batcher.max_batch_size if served.batchable and served.batcher else 0
