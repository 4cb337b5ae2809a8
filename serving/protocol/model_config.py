"""Triton's model configuration extension: a served model described as Triton's ``config.pbtxt`` would.

``GET /v2/models/{m}[/versions/{v}]/config`` (and gRPC ``ModelConfig``) answer the JSON form of Triton's
``ModelConfig`` message (its ``model_config.proto``). Triton's tools read it before they send anything:
``perf_analyzer`` and ``model_analyzer`` take the batch dimension, the inputs' shapes and datatypes from it, and
``tritonclient``'s ``get_model_config`` returns it. Only what this server knows is filled in; the rest of
Triton's fields are left out, as Triton leaves out the ones a model does not set.

Triton's convention differs from the model metadata's: with ``max_batch_size`` > 0 every input and output has
a first, batch dimension that ``dims`` does not list.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from modelpress.serving.version_policy import VersionPolicy

# The Open Inference Protocol's datatypes as model_config.proto's DataType names.
V2_TO_CONFIG_TYPE: dict[str, str] = {
    "BOOL": "TYPE_BOOL",
    "UINT8": "TYPE_UINT8",
    "UINT16": "TYPE_UINT16",
    "UINT32": "TYPE_UINT32",
    "UINT64": "TYPE_UINT64",
    "INT8": "TYPE_INT8",
    "INT16": "TYPE_INT16",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "FP16": "TYPE_FP16",
    "FP32": "TYPE_FP32",
    "FP64": "TYPE_FP64",
    "BYTES": "TYPE_STRING",
    "BF16": "TYPE_BF16",
}
PLATFORM = "onnxruntime_onnx"  # Triton's platform and backend names for an ONNX model
BACKEND = "onnxruntime"


class ConfigTensor(BaseModel):
    name: str
    data_type: str
    dims: list[int] = Field(description="The shape without the batch dimension when max_batch_size > 0; -1: any.")


class DynamicBatching(BaseModel):
    max_queue_delay_microseconds: int
    preferred_batch_size: list[int] = Field(default_factory=list)


class InstanceGroup(BaseModel):
    name: str
    kind: Literal["KIND_CPU", "KIND_GPU"]
    count: int = Field(description="Batches of the model that run at once (batches_in_flight).")
    gpus: list[int] = Field(default_factory=list)


class TransactionPolicy(BaseModel):
    decoupled: bool = False


class ModelConfig(BaseModel):
    """The subset of Triton's ``ModelConfig`` this server can state, in its JSON field names."""

    name: str
    platform: str = PLATFORM
    backend: str = BACKEND
    version_policy: dict[str, dict[str, object]]
    max_batch_size: int
    input: list[ConfigTensor]
    output: list[ConfigTensor]
    dynamic_batching: DynamicBatching | None = None
    instance_group: list[InstanceGroup]
    default_model_filename: str
    model_transaction_policy: TransactionPolicy = Field(default_factory=TransactionPolicy)


def config_tensor(name: str, datatype: str, shape: list[int], batched: bool) -> ConfigTensor:
    """One input or output as Triton lists it: without the batch dimension when the model batches.

    A tensor that is only its batch dimension (one text per row) is left with no dims: Triton would declare it
    ``dims: [1]`` reshaped to ``[]`` and take ``[rows, 1]``, which this server does not.
    """
    return ConfigTensor(name=name, data_type=V2_TO_CONFIG_TYPE.get(datatype, "TYPE_INVALID"),
                        dims=list(shape[1:] if batched else shape))  # fmt: skip


def config_version_policy(policy: VersionPolicy) -> dict[str, dict[str, object]]:
    """The policy as ``ModelVersionPolicy``'s JSON: one of ``latest``, ``all``, ``specific``."""
    if policy.kind == "latest":
        return {"latest": {"num_versions": policy.count}}
    if policy.kind == "specific":
        return {"specific": {"versions": list(policy.versions)}}
    return {"all": {}}
