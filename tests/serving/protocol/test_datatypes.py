"""numpy dtypes to V2 datatype names: every datatype round-trips, strings are BYTES, the rest is refused."""

from __future__ import annotations

import numpy as np
import pytest

from modelpress.serving.protocol.datatypes import V2_TO_NUMPY, numpy_to_v2


@pytest.mark.parametrize("name", [n for n in V2_TO_NUMPY if n != "BYTES"])
def test_every_fixed_size_datatype_round_trips(name):
    assert numpy_to_v2(V2_TO_NUMPY[name]) == name
    assert numpy_to_v2(np.zeros(2, dtype=V2_TO_NUMPY[name]).dtype) == name


def test_text_and_objects_are_bytes_and_others_are_refused():
    for dtype in (np.dtype(object), np.dtype("U5"), np.dtype("S3")):
        assert numpy_to_v2(dtype) == "BYTES"
    assert numpy_to_v2(np.dtype(">f4").newbyteorder("=")) == "FP32"
    with pytest.raises(ValueError, match="no Open Inference Protocol datatype"):
        numpy_to_v2(np.dtype(np.complex64))
