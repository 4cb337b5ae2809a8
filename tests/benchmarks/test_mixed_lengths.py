"""The mixed-length load: lengths in range, texts as long as asked by the model's tokenizer, configs parsed."""

from __future__ import annotations

import argparse
import json

import pytest

from modelpress.benchmarks.mixed_lengths import mixed_texts, parse_config, text_payload, token_lengths


def test_lengths_are_log_uniform_within_bounds():
    lengths = token_lengths(400, 5, 128, seed=0)
    assert min(lengths) >= 5
    assert max(lengths) <= 128
    short = sum(n <= 25 for n in lengths)  # log-uniform: half the mass below the geometric mean (~25)
    assert 150 < short < 250


def test_texts_reach_the_wanted_token_count(tmp_path):
    pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer

    from tests.serving.models import tokenizer_json

    path = tmp_path / "tokenizer.json"
    path.write_text(tokenizer_json())
    wanted = [5, 9, 30]
    texts = mixed_texts(path, wanted, seed=1)
    tokenizer = Tokenizer.from_file(str(path))
    for want, (text, tokens) in zip(wanted, texts, strict=True):
        assert tokens == len(tokenizer.encode(text).ids)
        assert want <= tokens <= want + 2


def test_configs_take_modelpress_settings_only():
    assert parse_config("batched=") == ("batched", {})
    assert parse_config("off=MODELPRESS_DYNAMIC_BATCHING=false,MODELPRESS_MAX_BATCH_SIZE=8") == (
        "off",
        {"MODELPRESS_DYNAMIC_BATCHING": "false", "MODELPRESS_MAX_BATCH_SIZE": "8"},
    )
    assert parse_config("emb=API=openai") == ("emb", {"API": "openai"})
    for bad in ("nolabel", "=x", "a=PATH=/tmp", "a=API=grpc"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_config(bad)


def test_one_text_per_request_in_each_api():
    v2, v1, openai = (text_payload(api, "m", "text", "hi there") for api in ("v2", "v1", "openai"))
    assert v2.path == "/v2/models/m/infer"
    assert json.loads(v2.body)["inputs"][0]["data"] == ["hi there"]
    assert (v1.path, json.loads(v1.body)) == ("/v1/models/m:predict", {"instances": ["hi there"]})
    assert (openai.path, json.loads(openai.body)) == ("/v1/embeddings", {"model": "m", "input": "hi there"})
