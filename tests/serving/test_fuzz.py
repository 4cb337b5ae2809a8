"""Property: no request body, however malformed, makes the server answer 5xx or stop serving."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from modelpress.serving.app import create_app
from tests.serving.conftest import running, settings_for
from tests.serving.models import FEATURES

# Hypothesis caches (unicode tables) go to the temp dir, never into the source tree.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "modelpress-hypothesis")

DATATYPES = ["BOOL", "INT8", "INT64", "UINT8", "UINT64", "FP16", "FP32", "FP64", "BYTES", "FP8", ""]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=5)
)
json_data = st.recursive(scalars, lambda inner: st.lists(inner, max_size=6), max_leaves=40)
tensor = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["input", "ids", "mask", "x", "text", "??"]),
        "shape": st.lists(st.integers(-2, 70), max_size=3),
        "datatype": st.sampled_from(DATATYPES),
    },
    optional={
        "data": json_data,
        "parameters": st.dictionaries(st.sampled_from(["binary_data_size", "x"]), st.integers(-5, 600), max_size=1),
    },
)
request = st.fixed_dictionaries(
    {"inputs": st.lists(tensor, max_size=3)},
    optional={
        "outputs": st.lists(st.fixed_dictionaries({"name": st.text(max_size=8)}), max_size=2),
        "id": st.one_of(st.text(max_size=4), st.integers()),
        "parameters": st.dictionaries(st.text(max_size=4), scalars, max_size=2),
    },
)


# database=None: no example database in the source tree; derandomize: the same examples in every CI run.
FUZZ = {"deadline": None, "database": None, "derandomize": True, "suppress_health_check": [HealthCheck.too_slow]}


@pytest.mark.slow
def test_fuzzed_requests_never_get_5xx(repo):
    loop = asyncio.new_event_loop()
    context = running(create_app(settings_for(repo), handle_signals=False))
    client = loop.run_until_complete(context.__aenter__())
    good = {"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": [0.0] * FEATURES}]}

    @settings(max_examples=150, **FUZZ)
    @given(
        body=request,
        model=st.sampled_from(["digits", "multi"]),
        binary_tail=st.one_of(st.none(), st.binary(max_size=64)),
        header_delta=st.integers(-10, 10),
    )
    def check(body: dict, model: str, binary_tail: bytes | None, header_delta: int) -> None:
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if binary_tail is not None:
            headers = {"Inference-Header-Content-Length": str(len(raw) + header_delta)}
            raw += binary_tail
        r = loop.run_until_complete(client.post(f"/v2/models/{model}/infer", content=raw, headers=headers))
        assert r.status_code < 500, r.text
        if r.status_code != 200:
            assert r.json()["error"]

    @settings(max_examples=100, **FUZZ)
    @given(
        instances=st.lists(
            st.one_of(json_data, st.dictionaries(st.sampled_from(["ids", "x", "?"]), json_data)), max_size=4
        ),
        model=st.sampled_from(["digits", "multi"]),
    )
    def check_v1(instances: list, model: str) -> None:
        raw = json.dumps({"instances": instances}).encode()  # NaN/Infinity literals included
        headers = {"Content-Type": "application/json"}
        r = loop.run_until_complete(client.post(f"/v1/models/{model}:predict", content=raw, headers=headers))
        assert r.status_code < 500, r.text
        if r.status_code != 200:
            assert r.json()["error"]

    try:
        check()
        check_v1()
        r = loop.run_until_complete(client.post("/v2/models/digits/infer", json=good))
        assert r.status_code == 200
    finally:
        loop.run_until_complete(context.__aexit__(None, None, None))
        loop.close()
