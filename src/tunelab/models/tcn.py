"""Temporal convolutional network (seed 000's temporal CNN; Bai et al. 2018)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field
from torch import Tensor, nn

from tunelab.config import ModelConfig, shape
from tunelab.data.base import DataMeta, Task
from tunelab.models.base import AttentionPool, Pooling, length_mask, pool
from tunelab.models.layers import MaskedConv1d, zero_padding
from tunelab.registry import MODELS

__all__ = ["TCN", "TCNBlock", "TCNConfig"]


class TCNConfig(ModelConfig):
    """Blocks of two dilated convs (dilation 2^i in block i), optionally residual and causal."""

    tasks: ClassVar[tuple[Task, ...]] = ("classification", "regression", "seq2seq")

    name: Literal["tcn"] = "tcn"
    channels: int = shape(64, "channels of every block", ge=1)
    num_blocks: int = shape(4, "blocks; block i uses dilation 2^i", ge=1)
    kernel_size: int = shape(3, "conv kernel size in steps", ge=1)
    residual: bool = shape(True, "add each block's input to its output")
    causal: bool = shape(False, "convs see only past steps (streaming); otherwise centred")
    layer_norm: bool = shape(True, "LayerNorm over channels after each conv (per step, so padding cannot leak)")
    pooling: Pooling = shape("mean", "last valid step, masked mean, or attention")
    dropout: float = Field(0.1, ge=0, lt=1, description="after each conv and before the head")


class TCNBlock(nn.Module):
    """conv → norm → GELU → dropout, twice, plus the residual; padded steps re-zeroed after each conv."""

    def __init__(self, channels: int, kernel: int, dilation: int, cfg: TCNConfig) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            MaskedConv1d(channels, channels, kernel, dilation=dilation, causal=cfg.causal) for _ in range(2)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(channels) if cfg.layer_norm else nn.Identity() for _ in range(2))
        self.act = nn.GELU()
        self.drop = nn.Dropout(cfg.dropout)
        self.residual = cfg.residual

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        z = h
        for conv, norm in zip(self.convs, self.norms, strict=True):
            z = zero_padding(self.drop(self.act(norm(conv(z, mask)))), mask)
        return h + z if self.residual else z


class TCN(nn.Module):
    """1x1 input projection, dilated blocks, masked pooling (or a per-step head for seq2seq)."""

    def __init__(self, cfg: TCNConfig, meta: DataMeta) -> None:
        super().__init__()
        self.proj = nn.Linear(meta.channels, cfg.channels)
        self.blocks = nn.ModuleList(TCNBlock(cfg.channels, cfg.kernel_size, 2**i, cfg) for i in range(cfg.num_blocks))
        self.pooling = cfg.pooling
        self.attn_pool = AttentionPool(cfg.channels) if cfg.pooling == "attention" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.seq2seq = meta.task == "seq2seq"
        self.head = nn.Linear(cfg.channels, meta.out_dim)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        mask = length_mask(lengths, x.shape[1])
        h = zero_padding(self.proj(x), mask)
        for block in self.blocks:
            h = block(h, mask)
        if self.seq2seq:
            return zero_padding(self.head(self.drop(h)), mask)
        return self.head(self.drop(pool(self.pooling, h, lengths, self.attn_pool)))


@MODELS.register("tcn", config=TCNConfig)
def build_tcn(cfg: TCNConfig, meta: DataMeta) -> nn.Module:
    """Temporal CNN: dilated (2^i) residual conv blocks, causal or centred, masked pooling."""
    return TCN(cfg, meta)
