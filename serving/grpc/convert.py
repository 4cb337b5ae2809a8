"""Protobuf messages of the gRPC V2 service ⇄ the protocol types the data plane takes and returns.

A ``ModelInferRequest`` becomes the same :class:`InferenceRequest` a REST request becomes: typed ``contents``
as the JSON ``data`` list (so the same range and kind checks apply), ``raw_input_contents`` as the binary
tensor extension's chunks (so the same size checks apply). Outputs always go back as ``raw_output_contents``,
which every client of the protocol reads (tritonclient's ``as_numpy`` does).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from modelpress.serving.dataplane import Inference
from modelpress.serving.errors import BadRequestError
from modelpress.serving.grpc.generated import open_inference_pb2 as pb
from modelpress.serving.protocol.codec import encode_binary, output_datatype, shape_str
from modelpress.serving.protocol.datatypes import V2_TO_NUMPY, element_size
from modelpress.serving.protocol.types import InferenceRequest

# Which typed list of InferTensorContents carries each datatype (the protocol's table; FP16 only travels raw).
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def parameters_of(params: Any) -> dict[str, Any] | None:
    """A protobuf ``map<string, InferParameter>`` as a plain dict (None when empty, as a REST request omits it)."""
    if not params:
        return None
    out = {}
    for key, value in params.items():
        kind = value.WhichOneof("parameter_choice")
        if kind is not None:
            out[key] = getattr(value, kind)
    return out


def set_parameters(target: Any, params: dict[str, Any]) -> None:
    """Fill a protobuf parameter map; values with no parameter kind (lists, objects) travel as JSON strings."""
    for key, value in params.items():
        slot = target[key]
        if isinstance(value, bool):
            slot.bool_param = value
        elif isinstance(value, int):
            if value >= 2**63:
                slot.uint64_param = value
            else:
                slot.int64_param = value
        elif isinstance(value, float):
            slot.double_param = value
        elif isinstance(value, str):
            slot.string_param = value
        else:
            slot.string_param = json.dumps(value, separators=(",", ":"))


def to_inference_request(message: pb.ModelInferRequest) -> tuple[InferenceRequest, dict[str, memoryview]]:
    """The V2 request and its raw input chunks (by input name) of a ``ModelInferRequest``.

    Raises:
        BadRequestError: no inputs, raw contents that do not pair with the inputs, an input with both kinds of
            data, or typed contents in the wrong list for its datatype.
    """
    if not message.inputs:
        raise BadRequestError("a ModelInferRequest needs at least one input")
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise BadRequestError(
            f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs: "
            "give one per input, in the inputs' order, or none"
        )
    inputs, binary = [], {}
    for index, tensor in enumerate(message.inputs):
        data = None
        if raw:
            if tensor.HasField("contents"):
                raise BadRequestError(f"input '{tensor.name}': has both contents and raw_input_contents")
            _check_raw_size(tensor, index, len(raw[index]))
            binary[tensor.name] = memoryview(raw[index])
        elif not tensor.HasField("contents"):
            pass  # no data: the codec says so once the model is known to exist and expect this input
        elif tensor.datatype == "BYTES":  # as the binary extension frames them: no text decoding on the way
            binary[tensor.name] = memoryview(_framed(_typed_contents(tensor, "bytes_contents")))
        else:
            data = _contents_data(tensor)
        inputs.append(
            {"name": tensor.name, "shape": list(tensor.shape), "datatype": tensor.datatype,
             "parameters": parameters_of(tensor.parameters), "data": data}
        )  # fmt: skip
    outputs = [{"name": o.name, "parameters": parameters_of(o.parameters)} for o in message.outputs]
    # One validation of plain dicts (pydantic-core, ~5 µs) rather than model_construct per object (~7 µs each).
    request = InferenceRequest.model_validate(
        {"id": message.id or None, "parameters": parameters_of(message.parameters), "inputs": inputs,
         "outputs": outputs or None}
    )  # fmt: skip
    return request, binary


def _check_raw_size(tensor: Any, index: int, size: int) -> None:
    """Raw bytes of a fixed-size datatype must be exactly what the declared shape needs."""
    if tensor.datatype not in V2_TO_NUMPY or tensor.datatype == "BYTES" or any(d < 0 for d in tensor.shape):
        return  # unknown datatypes and negative dimensions are named by the codec; BYTES elements are framed
    need = math.prod(tensor.shape) * element_size(tensor.datatype)
    if size != need:
        raise BadRequestError(
            f"input '{tensor.name}': shape {shape_str(list(tensor.shape))} {tensor.datatype} needs {need} bytes, "
            f"raw_input_contents[{index}] has {size}"
        )


def _contents_data(tensor: Any) -> list[Any] | None:
    """The flat element list of a tensor's typed ``contents``, from the list its datatype uses."""
    field = CONTENTS_FIELD.get(tensor.datatype)
    if field is None:
        return None  # an unknown datatype (the codec names it) or FP16, which has no typed list
    return list(_typed_contents(tensor, field))


def _typed_contents(tensor: Any, field: str) -> Any:
    filled = [f.name for f, _ in tensor.contents.ListFields()]
    wrong = [name for name in filled if name != field]
    if wrong:
        raise BadRequestError(f"input '{tensor.name}': {tensor.datatype} travels in contents.{field}, got {wrong}")
    return getattr(tensor.contents, field)


def _framed(elements: Any) -> bytes:
    """BYTES elements as raw contents carry them: each prefixed by its 4-byte little-endian length."""
    return b"".join(len(e).to_bytes(4, "little") + e for e in elements)


def to_infer_response(request: InferenceRequest, result: Inference) -> pb.ModelInferResponse:
    """The ``ModelInferResponse`` of a finished inference: outputs as raw contents, parameters echoed as REST does."""
    response = pb.ModelInferResponse(
        model_name=result.served.name, model_version=result.served.version, id=request.id or ""
    )
    for name, arr in result.outputs.items():
        response.outputs.add(name=name, datatype=output_datatype(arr), shape=arr.shape)
        response.raw_output_contents.append(encode_binary(np.asarray(arr)))
    parameters = {**(request.parameters or {}), **result.parameters}
    if parameters:
        set_parameters(response.parameters, parameters)
    return response
