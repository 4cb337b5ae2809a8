"""The sentence-encoder distillation settings, importable without torch (the export pass registry reads them)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class DistillConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    layers: list[int] = Field(default_factory=lambda: [0, 2, 4], description="teacher layers the student keeps")
    epochs: int = Field(2, ge=1, le=1000)
    batch_size: int = Field(32, ge=1, le=4096)
    lr: float = Field(1e-4, gt=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    warmup_fraction: float = Field(0.1, ge=0, lt=1)
    mse_weight: float = Field(1.0, ge=0, description="weight of the MSE term beside (1 - cosine)")
    hidden_weight: float = Field(
        0.0,
        ge=0,
        description="weight of matching each kept layer's token states to the teacher's same layer (0: off)",
    )
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps")
    eval_every: int | None = Field(
        None,
        ge=1,
        description="every this many steps (and at the end), the student's mean cosine to the teacher on the "
        "validation sentences the caller gives (never the held-out ones), recorded as a learning curve",
    )
    max_length: int = Field(64, gt=1, description="tokens per training text (the caller's tokenizer applies it)")
    freeze_embeddings: bool = Field(True, description="keep the teacher's token embeddings (half the weights) fixed")
    augment: bool = Field(
        True, description="also train on random word spans and sentence pairs (teacher run on the fly): less overfit"
    )
    length_buckets: int = Field(
        1,
        ge=1,
        le=256,
        description="tokenise this many batches at once and fill each batch with texts of similar token length "
        "(batch order shuffled): far less padding, so faster steps; 1 = off",
    )
    dropout: bool = Field(False, description="train with the encoder's dropout (off: faster to converge on short runs)")
    seed: int = 0
    reuse: str | None = Field(
        None,
        description="a student folder an earlier pipeline run kept (<workdir>/<name>-student): export and "
        "quantize it instead of distilling again (the pipeline's option; distill() itself ignores it)",
    )
    start_from: str | None = Field(
        None,
        description="a student folder an earlier pipeline run kept: distil it further (a new warm-up and decay) "
        "instead of starting from the teacher's layers (the pipeline's option)",
    )

    @model_validator(mode="after")
    def _one_student_source(self) -> DistillConfig:
        if self.reuse is not None and self.start_from is not None:
            raise ValueError("give reuse (export a kept student) or start_from (train it further), not both")
        return self

    @field_validator("layers")
    @classmethod
    def _layers_valid(cls, layers: list[int]) -> list[int]:
        if not layers or len(set(layers)) != len(layers) or any(i < 0 for i in layers):
            raise ValueError(f"layers must be distinct non-negative indices, got {layers}")
        return layers
