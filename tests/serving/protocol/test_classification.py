"""Triton's classification extension, the strings themselves: order, ties, labels, formats, counts, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from modelpress.serving.errors import BadRequestError
from modelpress.serving.manifest import TensorSpec
from modelpress.serving.protocol.classification import classification_counts, top_classes
from modelpress.serving.protocol.types import RequestOutput


def test_each_row_gives_its_highest_values_first_with_index_and_label():
    values = np.array([[1, 5, 10, 4], [0.5, -2, 0.25, 3]], dtype=np.float32)
    got = top_classes(values, 2, ["a", "b", "c", "d"], batched=True)
    assert got.shape == (2, 2)
    assert got.tolist() == [[b"10.000000:2:c", b"5.000000:1:b"], [b"3.000000:3:d", b"0.500000:0:a"]]


def test_ties_keep_index_order_and_a_class_beyond_the_labels_has_none():
    got = top_classes(np.array([[3, 3, 1, 3]], dtype=np.float16), 3, ["x"], batched=True)
    assert got.tolist() == [[b"3.000000:0:x", b"3.000000:1", b"3.000000:3"]]


def test_integers_print_as_integers_and_a_count_past_the_classes_gives_them_all():
    got = top_classes(np.array([[7, -1, 2**40]], dtype=np.int64), 10, None, batched=True)
    assert got.tolist() == [[f"{2**40}:2".encode(), b"7:0", b"-1:1"]]
    assert top_classes(np.array([[200, 3]], dtype=np.uint8), 1, None, batched=True).tolist() == [[b"200:0"]]


def test_without_a_batch_dimension_the_whole_tensor_is_one_row():
    got = top_classes(np.array([[1.0, 9.0], [4.0, 2.0]]), 2, None, batched=False)
    assert got.shape == (2,)
    assert got.tolist() == [b"9.000000:1", b"4.000000:2"]


SPECS = [
    TensorSpec(name="logits", datatype="FP32", shape=[-1, 4]),
    TensorSpec(name="text", datatype="BYTES", shape=[-1]),
]


def test_counts_are_read_per_output_and_outputs_without_one_are_left_out():
    outputs = [RequestOutput(name="logits", parameters={"classification": 3, "binary_data": True}),
               RequestOutput(name="text")]  # fmt: skip
    assert classification_counts(outputs, SPECS) == {"logits": 3}
    assert classification_counts(None, SPECS) == {}


@pytest.mark.parametrize("count", [0, -2, 1.5, "3", True, None])
def test_a_count_that_is_not_a_positive_integer_is_refused_by_name(count):
    parameters = {"classification": count} if count is not None else {"classification": [3]}
    with pytest.raises(BadRequestError, match=r"output 'logits': parameter 'classification' must be a positive"):
        classification_counts([RequestOutput(name="logits", parameters=parameters)], SPECS)


def test_an_output_of_strings_has_no_top_classes():
    with pytest.raises(BadRequestError, match=r"output 'text': BYTES values have no top classes"):
        classification_counts([RequestOutput(name="text", parameters={"classification": 1})], SPECS)
