"""Response encoding: orjson when it writes what json.dumps would mean, json.dumps for the cases it does not."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from modelpress.serving.rest.common import dumps


@pytest.mark.parametrize(
    "payload",
    [
        {"model_name": "digits", "outputs": [{"data": np.random.default_rng(0).standard_normal(10).tolist()}]},
        {"predictions": [{"label": "digit-3", "probabilities": {"digit-3": 0.9, "digit-8": 1e-05}}]},
        {"text": "naïve café ✓", "id": "a-1", "parameters": {"flag": True, "count": 3}},
        {"tiny": 5e-324, "huge": 1.7976931348623157e308, "neg": -0.0, "ints": [0, -(2**63), 2**64 - 1]},
    ],
)
def test_dumps_reads_back_as_json_dumps_does(payload):
    body = dumps(payload)
    assert json.loads(body) == json.loads(json.dumps(payload))
    assert b'": ' not in body  # compact, as the json.dumps it replaces was


def test_non_finite_floats_are_written_as_python_writes_them():
    body = dumps({"data": [1.5, math.nan, math.inf, -math.inf]})
    assert body == b'{"data":[1.5,NaN,Infinity,-Infinity]}'  # orjson would have written null


def test_integers_beyond_64_bits_and_literal_nulls_fall_back_to_json():
    assert dumps({"parameters": {"big": 2**70}}) == b'{"parameters":{"big":1180591620717411303424}}'
    assert dumps({"id": None, "data": [1]}) == b'{"id":null,"data":[1]}'
