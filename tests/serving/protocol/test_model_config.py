"""Triton's model configuration: tensors as config.pbtxt lists them."""

from __future__ import annotations

from modelpress.serving.protocol.datatypes import V2_TO_NUMPY
from modelpress.serving.protocol.model_config import V2_TO_CONFIG_TYPE, config_tensor


def test_a_batching_model_lists_its_tensors_without_the_batch_dimension():
    t = config_tensor("input", "FP32", [-1, 8, 8], batched=True)
    assert (t.name, t.data_type, t.dims) == ("input", "TYPE_FP32", [8, 8])


def test_a_model_without_batching_lists_the_whole_shape():
    assert config_tensor("x", "INT64", [2, -1], batched=False).dims == [2, -1]


def test_one_text_per_row_leaves_no_dims_and_texts_are_triton_strings():
    t = config_tensor("text", "BYTES", [-1], batched=True)
    assert (t.data_type, t.dims) == ("TYPE_STRING", [])


def test_every_served_datatype_has_a_triton_type():
    assert set(V2_TO_NUMPY) <= set(V2_TO_CONFIG_TYPE)
    assert config_tensor("x", "COMPLEX", [1], batched=False).data_type == "TYPE_INVALID"


def test_version_policies_take_tritons_form():
    from modelpress.serving.protocol.model_config import config_version_policy
    from modelpress.serving.version_policy import VersionPolicy

    assert config_version_policy(VersionPolicy.parse("latest:2")) == {"latest": {"num_versions": 2}}
    assert config_version_policy(VersionPolicy.parse("all")) == {"all": {}}
    assert config_version_policy(VersionPolicy.parse("specific:1,3")) == {"specific": {"versions": [1, 3]}}
