"""``inference.GRPCInferenceService``: the Open Inference Protocol's gRPC RPCs on the shared data plane.

A thin adapter, as ``serving/rest/`` is: every RPC is admitted by the same request guards as REST
(``serving/guards.py``; the token travels as ``authorization`` metadata), checks names and limits with
``serving/limits.py``, calls the data plane, and answers a refusal with the gRPC status of the error's HTTP
status (``serving/errors.py``). Inference is counted in the same metrics with ``protocol="grpc"``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from google.protobuf import any_pb2, duration_pb2
from google.protobuf.json_format import ParseDict
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2

from modelpress.serving.accounting import Tracked
from modelpress.serving.dataplane import DataPlane
from modelpress.serving.errors import GRPC_CODES, BadRequestError, ForbiddenError, ServingError
from modelpress.serving.grpc.calls import Call, Method
from modelpress.serving.grpc.convert import to_infer_response, to_inference_request
from modelpress.serving.grpc.generated import open_inference_pb2 as pb
from modelpress.serving.grpc.status import StatusCode
from modelpress.serving.guards import CallKind, Guards
from modelpress.serving.limits import check_infer_limits, check_path_names
from modelpress.serving.protocol.types import ModelStatistics

log = logging.getLogger("serving")

R = TypeVar("R")
M = TypeVar("M", bound=Message)
Handler = Callable[[Any, Call], Awaitable[R]]


SERVICE_NAME = "inference.GRPCInferenceService"


def parse(message_type: type[M], raw: bytes) -> M:
    """A request message from its bytes.

    Raises:
        BadRequestError: the bytes are not a valid message of this type.
    """
    try:
        return message_type.FromString(raw)
    except DecodeError as e:
        raise BadRequestError(f"malformed {message_type.__name__}: {e}") from e


def authorization(context: Call) -> bytes | None:
    """The call's ``authorization`` metadata (HTTP/2 header names are lower-case), if sent."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value.encode() if isinstance(value, str) else value
    return None


def status_of(error: ServingError) -> tuple[StatusCode, tuple[tuple[str, str | bytes], ...]]:
    """The gRPC code and trailing metadata answering ``error``.

    Its headers travel as lower-cased metadata (``retry-after``, ``www-authenticate``); a ``Retry-After`` is also
    sent as ``google.rpc.RetryInfo`` in ``grpc-status-details-bin``, where gRPC clients look for retry advice.
    """
    code = StatusCode[GRPC_CODES.get(error.status, "INTERNAL")]
    metadata: list[tuple[str, str | bytes]] = [(k.lower(), v) for k, v in error.headers.items()]
    retry_after = error.headers.get("Retry-After")
    if retry_after is not None and retry_after.isdigit():
        info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=int(retry_after)))
        detail = any_pb2.Any()
        detail.Pack(info)
        status = status_pb2.Status(code=int(code), message=error.message, details=[detail])
        metadata.append(("grpc-status-details-bin", status.SerializeToString()))
    return code, tuple(metadata)


async def guarded(guards: Guards, kind: CallKind, handler: Handler[R], request: Any, context: Call) -> R:
    """Run one RPC's handler admitted by the guards; a refusal or failure ends the call with its gRPC status."""
    try:
        with guards.admit(kind, authorization(context)):
            return await handler(request, context)
    except ServingError as e:
        code, metadata = status_of(e)
        if code is StatusCode.INTERNAL:
            log.error("internal error: %s", e.message)
        await context.abort(code, e.message, metadata)
    except Exception as e:  # a bug: logged with its traceback, INTERNAL naming only the exception's type
        log.exception("unexpected error in a gRPC call", exc_info=e)
        await context.abort(StatusCode.INTERNAL, f"internal error: {type(e).__name__}")
    raise AssertionError("unreachable: context.abort raises")  # pragma: no cover


class InferenceService:
    """The RPCs, each parsed, admitted by the guards and answered from the data plane."""

    def __init__(self, dataplane: DataPlane, guards: Guards) -> None:
        self.dataplane = dataplane
        self.guards = guards
        self._rpcs: dict[str, tuple[CallKind, Handler[Any]]] = {
            "ServerLive": (CallKind.HEALTH, self._live),
            "ServerReady": (CallKind.HEALTH, self._ready),
            "ModelReady": (CallKind.API, self._model_ready),
            "ServerMetadata": (CallKind.API, self._server_metadata),
            "ModelMetadata": (CallKind.API, self._model_metadata),
            "ModelInfer": (CallKind.API, self._infer),
            "ModelStatistics": (CallKind.API, self._statistics),
            "ModelConfig": (CallKind.API, self._config),
            "RepositoryIndex": (CallKind.API, self._index),
            "RepositoryModelLoad": (CallKind.API, self._load),
            "RepositoryModelUnload": (CallKind.API, self._unload),
        }

    def methods(self) -> dict[str, Method]:
        """Every RPC of the service by its path, as the ``.proto`` declares them.

        Requests arrive as bytes and are parsed inside the guards, so a malformed message is answered
        INVALID_ARGUMENT naming the problem.
        """
        methods = {}
        for method in pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods:
            kind, handler = self._rpcs[method.name]
            request_type = getattr(pb, method.input_type.name)
            response_type = getattr(pb, method.output_type.name)
            methods[f"/{SERVICE_NAME}/{method.name}"] = Method(
                self._behaviour(kind, handler, request_type), response_type.SerializeToString
            )
        return methods

    def _behaviour(self, kind: CallKind, handler: Handler[Any], request_type: type[Message]) -> Handler[Any]:
        async def parsed(raw: bytes, context: Call) -> Any:
            return await handler(parse(request_type, raw), context)

        async def behaviour(raw: bytes, context: Call) -> Any:
            return await guarded(self.guards, kind, parsed, raw, context)

        return behaviour

    async def _live(self, _: Any, __: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def _ready(self, _: Any, __: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.dataplane.ready())

    async def _model_ready(self, request: pb.ModelReadyRequest, _: Any) -> pb.ModelReadyResponse:
        check_path_names(request.name, request.version or None)
        return pb.ModelReadyResponse(ready=self.dataplane.model_ready(request.name, request.version or None))

    async def _server_metadata(self, _: Any, __: Any) -> pb.ServerMetadataResponse:
        meta = self.dataplane.server_metadata()
        return pb.ServerMetadataResponse(name=meta.name, version=meta.version, extensions=meta.extensions)

    async def _model_metadata(self, request: pb.ModelMetadataRequest, _: Any) -> pb.ModelMetadataResponse:
        check_path_names(request.name, request.version or None)
        meta = self.dataplane.model_metadata(request.name, request.version or None)
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=meta.name,
            versions=meta.versions,
            platform=meta.platform,
            inputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.inputs],
            outputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.outputs],
        )

    # ---- inference ----------------------------------------------------------------------------------------
    async def _infer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        name, version = request.model_name, request.model_version or None
        check_path_names(name, version)
        # The caller's traceparent travels as metadata; read only when tracing is on (nothing to pay otherwise).
        carrier = dict(context.invocation_metadata() or ()) if self.dataplane.tracing is not None else None
        with Tracked(self.dataplane, name, "grpc", carrier) as track:
            parsed, binary = to_inference_request(request)
            check_infer_limits(parsed, self.dataplane.settings)
            result = await self.dataplane.infer(name, version, parsed, binary, deadline_s=context.time_remaining())
            track.served, track.rows = result.served, result.rows
            return to_infer_response(parsed, result)

    async def _statistics(self, request: pb.ModelStatisticsRequest, _: Any) -> pb.ModelStatisticsResponse:
        name, version = request.name or None, request.version or None
        check_path_names(name, version)
        stats = self.dataplane.statistics(name, version)
        return pb.ModelStatisticsResponse(model_stats=[_statistics(s) for s in stats.model_stats])

    async def _config(self, request: pb.ModelConfigRequest, _: Any) -> pb.ModelConfigResponse:
        check_path_names(request.name, request.version or None)
        config = self.dataplane.model_config(request.name, request.version or None)
        # The JSON form's names and enum spellings are the message's: one description serves REST and gRPC.
        return pb.ModelConfigResponse(config=ParseDict(config.model_dump(exclude_none=True), pb.ModelConfig()))

    # ---- repository ---------------------------------------------------------------------------------------
    def _repository_enabled(self) -> None:
        if not self.dataplane.settings.repository_api:
            raise ForbiddenError(
                "the repository API is disabled (start with MODELPRESS_REPOSITORY_API=true to enable it)"
            )

    async def _index(self, request: pb.RepositoryIndexRequest, _: Any) -> pb.RepositoryIndexResponse:
        self._repository_enabled()
        entry = pb.RepositoryIndexResponse.ModelIndex
        return pb.RepositoryIndexResponse(
            models=[
                entry(name=e.name, version=e.version, state=e.state, reason=e.reason)
                for e in self.dataplane.repository.index()
                if not request.ready or e.state == "READY"
            ]
        )

    async def _load(self, request: pb.RepositoryModelLoadRequest, _: Any) -> pb.RepositoryModelLoadResponse:
        self._repository_enabled()
        check_path_names(request.model_name, None)
        await self.dataplane.repository.load(request.model_name)
        return pb.RepositoryModelLoadResponse()

    async def _unload(self, request: pb.RepositoryModelUnloadRequest, _: Any) -> pb.RepositoryModelUnloadResponse:
        self._repository_enabled()
        check_path_names(request.model_name, None)
        await self.dataplane.repository.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse()


def _statistics(stats: ModelStatistics) -> pb.ModelStatistics:
    s = stats.inference_stats
    duration = pb.StatisticDuration
    return pb.ModelStatistics(
        name=stats.name,
        version=stats.version,
        last_inference=stats.last_inference,
        inference_count=stats.inference_count,
        execution_count=stats.execution_count,
        inference_stats=pb.InferStatistics(
            **{
                field: duration(count=getattr(s, field).count, ns=getattr(s, field).ns)
                for field in ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")
            }
        ),
    )
