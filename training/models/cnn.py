"""Convolutional network: blocks of (conv + batch norm + ReLU) × n followed by 2×2 max pooling."""

from __future__ import annotations

from pydantic import Field
from torch import nn

from modelpress.training.models.config import ArchConfig, check_reshape


class CNNConfig(ArchConfig):
    image_shape: list[int] = Field(default_factory=lambda: [1, 8, 8], description="[channels, height, width]")
    channels: list[int] = Field(default_factory=lambda: [32, 64], description="output channels of each block")
    convs_per_block: int = Field(2, ge=1)
    kernel_size: int = Field(3, ge=1)
    hidden: int = Field(128, ge=0, description="width of the dense layer before the head (0: none)")
    dropout: float = Field(0.25, ge=0.0, lt=1.0)


def _block(c_in: int, c_out: int, cfg: CNNConfig) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(cfg.convs_per_block):
        # bias is redundant right before batch norm
        layers += [
            nn.Conv2d(c_in if i == 0 else c_out, c_out, cfg.kernel_size, padding=cfg.kernel_size // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
        ]
    layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class CNN(nn.Module):
    def __init__(self, cfg: CNNConfig, input_shape: list[int], num_outputs: int):
        super().__init__()
        if len(cfg.image_shape) != 3:
            raise ValueError(f"cnn image_shape must be [channels, height, width], got {cfg.image_shape}")
        check_reshape("cnn", "image_shape", cfg.image_shape, input_shape)
        if cfg.kernel_size % 2 == 0:
            raise ValueError(f"cnn kernel_size must be odd to keep the image size, got {cfg.kernel_size}")
        c, h, w = cfg.image_shape
        if h >> len(cfg.channels) < 1 or w >> len(cfg.channels) < 1:
            raise ValueError(
                f"cnn: {len(cfg.channels)} pooling blocks halve image_shape {cfg.image_shape} below 1 pixel; "
                "use fewer channels entries"
            )
        self.image_shape = tuple(cfg.image_shape)
        blocks = []
        for c_out in cfg.channels:
            blocks.append(_block(c, c_out, cfg))
            c, h, w = c_out, h // 2, w // 2
        self.features = nn.Sequential(*blocks)
        flat = c * h * w
        head: list[nn.Module] = [nn.Flatten()]
        if cfg.hidden:
            head += [nn.Linear(flat, cfg.hidden), nn.ReLU()]
            flat = cfg.hidden
        if cfg.dropout > 0:
            head.append(nn.Dropout(cfg.dropout))
        head.append(nn.Linear(flat, num_outputs))
        self.head = nn.Sequential(*head)

    def forward(self, x):
        # -1 keeps the batch dimension symbolic for the ONNX exporter
        x = x.reshape(-1, *self.image_shape)
        return self.head(self.features(x))
