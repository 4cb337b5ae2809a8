"""Open Inference Protocol (KServe V2) messages, plus the V1 predict messages and repository/statistics types.

The request types validate structure only; tensor contents are checked against the model in the codec and
the dataplane, where the error can name the model's expectation.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Parameters = dict[str, Any]


class RequestInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: Any = Field(default=None, description="Flat or nested list (row-major); absent when sent as binary.")


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    parameters: Parameters | None = Field(default=None, description='{"binary_data": true} returns it as binary.')


class InferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    parameters: Parameters | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


class MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]
    parameters: Parameters = Field(default_factory=dict)


class ErrorResponse(BaseModel):
    error: str


class RepositoryIndexRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ready: bool = False


class RepositoryIndexEntry(BaseModel):
    name: str
    version: str
    state: str
    reason: str = ""


class StatDuration(BaseModel):
    count: int = 0
    ns: int = 0


class InferenceStats(BaseModel):
    success: StatDuration
    fail: StatDuration
    queue: StatDuration
    compute_input: StatDuration
    compute_infer: StatDuration
    compute_output: StatDuration


class ModelStatistics(BaseModel):
    name: str
    version: str
    last_inference: int
    inference_count: int
    execution_count: int
    inference_stats: InferenceStats


class ModelStatisticsResponse(BaseModel):
    model_stats: list[ModelStatistics]


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instances: list[Any] = Field(min_length=1, description="One entry per row: a (nested) list of features.")


class PredictResponse(BaseModel):
    predictions: list[Any]
    parameters: Parameters | None = Field(default=None, description='e.g. {"truncated": [row indices]}')
