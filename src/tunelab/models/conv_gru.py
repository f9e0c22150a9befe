"""Conv1D front-end feeding a GRU (seed 004's Conv1D+GRU hybrid)."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from pydantic import Field
from torch import Tensor, nn

from tunelab.config import shape
from tunelab.data.base import DataMeta
from tunelab.models.base import length_mask
from tunelab.models.gru import GRUConfig, RNNClassifier
from tunelab.models.layers import MaskedConv1d, zero_padding
from tunelab.registry import MODELS

__all__ = ["ConvGRU", "ConvGRUConfig"]


class ConvGRUConfig(GRUConfig):
    """Masked Conv1D layers extract local features; a GRU models their sequence."""

    name: Literal["conv_gru"] = "conv_gru"  # type: ignore[assignment]
    conv_channels: int = shape(64, "channels of each conv layer", ge=1)
    kernel_size: int = shape(5, "conv kernel size in steps ('same' padding)", ge=1)
    conv_layers: int = shape(2, "stacked conv layers before the GRU", ge=1)
    num_layers: int = shape(1, "stacked GRU layers", ge=1)
    conv_dropout: float = Field(0.1, ge=0, lt=1, description="dropout after each conv layer")


class ConvGRU(RNNClassifier):
    """Conv front-end + the GRU encoder/pooling/head of :class:`RNNClassifier`.

    Each conv sees zeros at padded steps (zeroed before the conv, re-zeroed after it), so
    padding never leaks into valid steps; the GRU then runs as :class:`RNNClassifier`'s does.
    """

    def __init__(self, cfg: ConvGRUConfig, meta: DataMeta) -> None:
        super().__init__(nn.GRU, cfg, replace(meta, channels=cfg.conv_channels))
        self.convs = nn.ModuleList(
            MaskedConv1d(meta.channels if i == 0 else cfg.conv_channels, cfg.conv_channels, cfg.kernel_size)
            for i in range(cfg.conv_layers)
        )
        self.act = nn.GELU()
        self.conv_drop = nn.Dropout(cfg.conv_dropout)

    def encode(self, x: Tensor, lengths: Tensor) -> Tensor:
        mask = length_mask(lengths, x.shape[1])
        h = x
        for conv in self.convs:
            h = zero_padding(self.conv_drop(self.act(conv(h, mask))), mask)
        return super().encode(h, lengths)


@MODELS.register("conv_gru", config=ConvGRUConfig)
def build_conv_gru(cfg: ConvGRUConfig, meta: DataMeta) -> nn.Module:
    """Conv1D layers (masked, 'same' padding) feeding a GRU with last/mean/attention pooling."""
    return ConvGRU(cfg, meta)
