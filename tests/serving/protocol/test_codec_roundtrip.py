"""Property: every V2 datatype survives the JSON encoding and the binary tensor extension unchanged."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.extra import numpy as hnp

from modelpress.serving.protocol.codec import decode_input, encode_binary, encode_json, output_datatype
from modelpress.serving.protocol.datatypes import V2_TO_NUMPY
from modelpress.serving.protocol.types import RequestInput

set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "modelpress-hypothesis")

PROPERTY = {"max_examples": 300, "deadline": None, "database": None, "derandomize": True}
FIXED = [name for name in V2_TO_NUMPY if name != "BYTES"]
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)


@st.composite
def fixed_arrays(draw) -> tuple[str, np.ndarray]:
    """Any fixed-size datatype with its full range: NaN, infinities, -0.0, subnormals, integer extremes."""
    datatype = draw(st.sampled_from(FIXED))
    return datatype, draw(hnp.arrays(V2_TO_NUMPY[datatype], shapes))


@st.composite
def text_arrays(draw) -> np.ndarray:
    shape = draw(shapes)
    count = int(np.prod(shape))
    values = draw(st.lists(st.text(max_size=12), min_size=count, max_size=count))
    return np.array([v.encode() for v in values], dtype=object).reshape(shape)


@st.composite
def raw_bytes_arrays(draw) -> np.ndarray:
    shape = draw(shapes)
    count = int(np.prod(shape))
    values = draw(st.lists(st.binary(max_size=12), min_size=count, max_size=count))
    return np.array(values, dtype=object).reshape(shape)


def via_json(arr: np.ndarray) -> np.ndarray:
    """Encode as the server answers (JSON with NaN allowed), parse as a client's request would be parsed."""
    wire = json.dumps({"data": encode_json(arr)}, allow_nan=True)
    item = RequestInput(name="t", shape=list(arr.shape), datatype=output_datatype(arr), data=json.loads(wire)["data"])
    return decode_input(item, None)


def via_binary(arr: np.ndarray) -> np.ndarray:
    raw = encode_binary(arr)
    item = RequestInput(name="t", shape=list(arr.shape), datatype=output_datatype(arr),
                        parameters={"binary_data_size": len(raw)})  # fmt: skip
    return decode_input(item, memoryview(raw))


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    if want.dtype.kind == "f":  # bit for bit: NaN equals NaN, -0.0 stays -0.0
        np.testing.assert_array_equal(got.view(f"u{want.itemsize}"), want.view(f"u{want.itemsize}"))
    else:
        np.testing.assert_array_equal(got, want)


@settings(**PROPERTY)
@given(fixed_arrays())
def test_fixed_size_datatypes_round_trip_binary(case):
    _, arr = case
    assert_same(via_binary(arr), arr)


@settings(**PROPERTY)
@given(fixed_arrays())
def test_fixed_size_datatypes_round_trip_json(case):
    datatype, arr = case
    assert output_datatype(arr) == datatype
    got = via_json(arr)
    if arr.dtype.kind == "f":  # JSON has one NaN: its payload bits are not kept, its NaN-ness is
        nan = np.isnan(arr)
        assert np.array_equal(np.isnan(got), nan)
        assert_same(np.where(nan, 0, got).astype(arr.dtype), np.where(nan, 0, arr).astype(arr.dtype))
    else:
        assert_same(got, arr)


@settings(**PROPERTY)
@given(text_arrays())
def test_bytes_of_text_round_trip_json_and_binary(arr):
    assert_same(via_json(arr), arr)
    assert_same(via_binary(arr), arr)


@settings(**PROPERTY)
@given(raw_bytes_arrays())
def test_arbitrary_bytes_round_trip_binary(arr):
    """Binary keeps any bytes (JSON can only carry text: non-UTF-8 BYTES outputs need binary_data)."""
    assert_same(via_binary(arr), arr)


def test_every_datatype_is_covered():
    assert set(FIXED) | {"BYTES"} == set(V2_TO_NUMPY)
    assert len(V2_TO_NUMPY) == 13


def test_uint64_above_int64_beside_small_values_is_exact():
    # numpy makes float64 of [0, 2**63]: rounding would change the value the client sent
    arr = np.array([0, 2**63, 2**64 - 1], dtype=np.uint64)
    np.testing.assert_array_equal(via_json(arr), arr)
    assert via_json(arr).dtype == np.uint64
