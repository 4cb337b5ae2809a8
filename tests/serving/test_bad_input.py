"""Every kind of bad input gets a 4xx JSON error naming the problem, and the server keeps serving."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from tests.serving.conftest import client_for
from tests.serving.models import FEATURES
from tests.serving.test_inprocess import _multi_body

pytestmark = pytest.mark.anyio

X2 = np.zeros((2, FEATURES), dtype=np.float32)


def digits(shape=(2, FEATURES), datatype="FP32", data=None, name="input") -> dict:
    values = X2.reshape(-1).tolist() if data is None else data
    return {"inputs": [{"name": name, "shape": list(shape), "datatype": datatype, "data": values}]}


def multi_without(name: str) -> dict:
    body = _multi_body()
    body["inputs"] = [i for i in body["inputs"] if i["name"] != name]
    return body


def multi_with(name: str, **changes: object) -> dict:
    body = _multi_body()
    for item in body["inputs"]:
        if item["name"] == name:
            item.update(changes)
    return body


def binary(header: dict, blob: bytes, declared: int | None = None) -> tuple[bytes, dict]:
    head = json.dumps(header).encode()
    length = len(head) if declared is None else declared
    return head + blob, {"Inference-Header-Content-Length": str(length)}


def bin_digits(size: int) -> dict:
    return {"inputs": [{"name": "input", "shape": [2, FEATURES], "datatype": "FP32",
                        "parameters": {"binary_data_size": size}}]}  # fmt: skip


CASES = {
    "unknown model": ("/v2/models/nope/infer", digits(), 404, "model 'nope' is not served"),
    "unknown version": ("/v2/models/digits/versions/9/infer", digits(), 404, "version '9' is not served"),
    "misnamed input": ("/v2/models/digits/infer", digits(name="inp"), 400, "unexpected input 'inp'"),
    "missing input": ("/v2/models/multi/infer", multi_without("text"), 400, "missing input(s) ['text']"),
    "extra input": (
        "/v2/models/multi/infer",
        {"inputs": [*_multi_body()["inputs"], {"name": "extra", "shape": [1], "datatype": "FP32", "data": [1]}]},
        400,
        "unexpected input 'extra'",
    ),
    "duplicate input": (
        "/v2/models/digits/infer",
        {"inputs": digits()["inputs"] * 2},
        400,
        "given more than once",
    ),
    "no inputs": ("/v2/models/digits/infer", {"inputs": []}, 400, "inputs"),
    "wrong datatype": (
        "/v2/models/digits/infer",
        digits(datatype="FP64"),
        400,
        "input 'input': expected shape [-1, 64] FP32, got [2, 64] FP64",
    ),
    "wrong shape": (
        "/v2/models/digits/infer",
        digits(shape=(2, 63), data=[0.0] * 126),
        400,
        "input 'input': expected shape [-1, 64] FP32, got [2, 63] FP32",
    ),
    "wrong rank": ("/v2/models/digits/infer", digits(shape=(128,)), 400, "got [128] FP32"),
    "element count": (
        "/v2/models/digits/infer",
        digits(data=[0.0] * 127),
        400,
        "shape [2, 64] needs 128 elements, data has 127",
    ),
    "ragged nested data": (
        "/v2/models/digits/infer",
        digits(data=[[0.0] * 64, [0.0] * 63]),
        400,
        "needs 128 elements, data has 127",
    ),
    "strings for FP32": (
        "/v2/models/digits/infer",
        digits(data=["a"] * 128),
        400,
        "FP32 expects numbers, data holds strings",
    ),
    "floats for INT64": (
        "/v2/models/multi/infer",
        multi_with("ids", data=[0.5] * 6),
        400,
        "INT64 expects integers, data holds floats",
    ),
    "ints for BOOL": (
        "/v2/models/multi/infer",
        multi_with("mask", data=[1] * 6),
        400,
        "BOOL expects true/false",
    ),
    "UINT8 out of range": (
        "/v2/models/multi/infer",
        multi_with("u8", data=[0, 256] * 2),
        400,
        "outside the UINT8 range",
    ),
    "numbers for BYTES": ("/v2/models/multi/infer", multi_with("text", data=[1, 2]), 400, "BYTES expects strings"),
    "null in data": ("/v2/models/digits/infer", digits(data=[None] * 128), 400, "input 'input'"),
    "negative dim": ("/v2/models/digits/infer", digits(shape=(-2, FEATURES)), 400, "negative dimension"),
    "batch dims disagree": (
        "/v2/models/multi/infer",
        multi_with("x", shape=[3, 3], data=[0.0] * 9),
        400,
        "disagree on the batch dimension",
    ),
    "unknown output": (
        "/v2/models/digits/infer",
        digits() | {"outputs": [{"name": "probs"}]},
        400,
        "unknown output 'probs': model 'digits' has outputs ['logits']",
    ),
    "unknown field": ("/v2/models/digits/infer", digits() | {"inptus": []}, 400, "inptus"),
    "data missing": (
        "/v2/models/digits/infer",
        {"inputs": [{"name": "input", "shape": [2, FEATURES], "datatype": "FP32"}]},
        400,
        "no data",
    ),
    "v1 wrong features": (
        "/v1/models/digits:predict",
        {"instances": [[0.0] * 63]},
        400,
        "expected shape [-1, 64] FP32, got [1, 63]",
    ),
    "v1 no instances": ("/v1/models/digits:predict", {"instances": []}, 400, "instances"),
    "v1 unknown model": ("/v1/models/nope:predict", {"instances": [[0.0]]}, 404, "model 'nope' is not served"),
    "v1 strings": ("/v1/models/digits:predict", {"instances": [["x"] * 64]}, 400, "FP32 expects numbers"),
    "v1 multi needs objects": ("/v1/models/multi:predict", {"instances": [[1, 2]]}, 400, "must be an object"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
async def test_bad_json_request(repo, case):
    path, body, status, fragment = CASES[case]
    async with client_for(repo) as c:
        r = await c.post(path, json=body)
        assert r.status_code == status, r.text
        assert fragment in r.json()["error"]
        assert (await c.post("/v2/models/digits/infer", json=digits())).status_code == 200


RAW_CASES = {
    "malformed JSON": (b'{"inputs": [', {"Content-Type": "application/json"}, 400, "malformed JSON"),
    "NaN": (
        json.dumps(digits(data=[0.0] * 5 + [float("nan")] + [0.0] * 122)).encode(),
        {"Content-Type": "application/json"}, 400, "NaN or infinity at flat index 5",
    ),
    "Infinity": (
        json.dumps(digits(data=[float("inf")] * 128)).encode(), {"Content-Type": "application/json"}, 400,
        "NaN or infinity at flat index 0",
    ),
    "text/plain": (json.dumps(digits()).encode(), {"Content-Type": "text/plain"}, 415, "expected Content-Type"),
    "form encoded": (
        json.dumps(digits()).encode(), {"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json",
    ),
    "unknown encoding": (
        json.dumps(digits()).encode(), {"Content-Type": "application/json", "Content-Encoding": "br"}, 415, "'br'",
    ),
    "binary header longer than body": (*binary(bin_digits(X2.nbytes), X2.tobytes(), declared=10**6), 400,
                                       "Inference-Header-Content-Length"),
    "binary header not a number": (*binary(bin_digits(X2.nbytes), X2.tobytes(), declared=-1), 400,
                                   "Inference-Header-Content-Length"),
    "binary size past the end": (*binary(bin_digits(X2.nbytes + 4), X2.tobytes()), 400, "runs past the end"),
    "binary size vs shape": (*binary(bin_digits(X2.nbytes - 4), X2.tobytes()[:-4]), 400,
                             "FP32 needs 512 bytes, binary_data_size is 508"),
    "binary trailing bytes": (*binary(bin_digits(X2.nbytes), X2.tobytes() + b"xx"), 400, "add up to 512"),
    "binary NaN": (*binary(bin_digits(X2.nbytes), np.full_like(X2, np.nan).tobytes()), 400, "NaN or infinity"),
    "binary size negative": (*binary(bin_digits(-1), b""), 400, "binary_data_size must be a non-negative integer"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(RAW_CASES), ids=list(RAW_CASES))
async def test_bad_raw_body(repo, case):
    content, headers, status, fragment = RAW_CASES[case]
    async with client_for(repo) as c:
        r = await c.post("/v2/models/digits/infer", content=content, headers=headers)
        assert r.status_code == status, r.text
        assert fragment in r.json()["error"]
        assert (await c.post("/v2/models/digits/infer", json=digits())).status_code == 200


async def test_binary_bytes_truncated_length_prefix(repo):
    body = multi_with("text", data=None, parameters={"binary_data_size": 9})
    blob = struct.pack("<I", 2) + b"ab" + b"\x05\x00\x00"  # second element's prefix cut short
    del body["inputs"][-1]["data"]
    content, headers = binary(body, blob)
    async with client_for(repo) as c:
        r = await c.post("/v2/models/multi/infer", content=content, headers=headers)
    assert r.status_code == 400
    assert "truncated length prefix" in r.json()["error"]


async def test_body_over_limit_is_413(repo):
    async with client_for(repo, max_body_bytes=300) as c:
        r = await c.post("/v2/models/digits/infer", json=digits())
        assert r.status_code == 413
        assert "exceeds the limit of 300 bytes" in r.json()["error"]

        async def chunks():  # no Content-Length: refused while streaming
            for _ in range(10):
                yield b" " * 200

        r = await c.post("/v2/models/digits/infer", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413


async def test_gzip_body_accepted_and_bomb_refused(repo):
    import gzip

    async with client_for(repo, max_body_bytes=4000) as c:
        small = gzip.compress(json.dumps(digits(shape=(1, FEATURES), data=[0.0] * FEATURES)).encode())
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        assert (await c.post("/v2/models/digits/infer", content=small, headers=headers)).status_code == 200
        bomb = gzip.compress(b" " * 100_000)
        r = await c.post("/v2/models/digits/infer", content=bomb, headers=headers)
        assert r.status_code == 413


async def test_invalid_utf8_bytes_input_is_400(repo):
    body = multi_with("text", data=None, parameters={"binary_data_size": 12})
    del body["inputs"][-1]["data"]
    content, headers = binary(body, (struct.pack("<I", 2) + b"\xff\xfe") * 2)
    async with client_for(repo) as c:
        r = await c.post("/v2/models/multi/infer", content=content, headers=headers)
    assert r.status_code == 400
    assert "UTF-8" in r.json()["error"]


async def test_unknown_route_and_method_are_json(repo):
    async with client_for(repo) as c:
        r = await c.get("/v2/nothing-here")
        assert r.status_code == 404
        assert "error" in r.json()
        r = await c.get("/v2/models/digits/infer")
        assert r.status_code == 405
        assert "error" in r.json()


async def test_repository_api_off_by_default(repo):
    async with client_for(repo) as c:
        r = await c.post("/v2/repository/index")
        assert r.status_code == 403
        assert "MODELPRESS_REPOSITORY_API" in r.json()["error"]
        assert (await c.post("/v2/repository/models/digits/unload")).status_code == 403
        assert (await c.get("/v2/health/ready")).status_code == 200
