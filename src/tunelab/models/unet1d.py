"""1D U-Net for denoising and regression (seed 002), also usable as a pooled classifier."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from tunelab.config import ModelConfig, shape
from tunelab.data.base import DataMeta, Task
from tunelab.models.base import AttentionPool, Pooling, length_mask, pool
from tunelab.models.layers import MaskedConv1d, downsample_lengths, masked_downsample, zero_padding
from tunelab.registry import MODELS

__all__ = ["ConvBlock", "UNet1D", "UNet1DConfig"]


class UNet1DConfig(ModelConfig):
    """Encoder halves time ``depth`` times (channels double), decoder mirrors it with skips.

    Seq2seq data gets one output per step ``[B, T, C_out]``; classification/regression data
    gets the decoder output pooled over valid steps and a linear head.
    """

    tasks: ClassVar[tuple[Task, ...]] = ("seq2seq", "classification", "regression")

    name: Literal["unet1d"] = "unet1d"
    depth: int = shape(3, "downsampling steps (time halves, channels double, at each)", ge=1, le=8)
    base_channels: int = shape(16, "channels at full resolution", ge=1)
    kernel_size: int = shape(5, "conv kernel size in steps", ge=1)
    layer_norm: bool = shape(True, "LayerNorm over channels after each conv (per step, so padding cannot leak)")
    residual_output: bool = shape(True, "seq2seq with C_out == C_in: predict a correction added to the input")
    pooling: Pooling = shape("mean", "classification/regression: last valid step, masked mean, or attention")
    dropout: float = Field(0.0, ge=0, lt=1, description="after each conv block and before the head")


class ConvBlock(nn.Module):
    """(masked conv → norm → GELU) x 2, padded steps re-zeroed after each conv, then dropout."""

    def __init__(self, c_in: int, c_out: int, kernel: int, norm: bool, dropout: float) -> None:
        super().__init__()
        self.convs = nn.ModuleList([MaskedConv1d(c_in, c_out, kernel), MaskedConv1d(c_out, c_out, kernel)])
        self.norms = nn.ModuleList(nn.LayerNorm(c_out) if norm else nn.Identity() for _ in range(2))
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout)

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = zero_padding(self.act(norm(conv(h, mask))), mask)
        return self.drop(h)


class UNet1D(nn.Module):
    """U-Net over ``[B, T, C]``: pads T internally to a multiple of 2^depth and crops back.

    Downsampling averages valid steps only and every level re-zeroes its padded steps, so a
    valid output never depends on how much padding follows the sequence.
    """

    def __init__(self, cfg: UNet1DConfig, meta: DataMeta) -> None:
        super().__init__()
        widths = [cfg.base_channels * 2**i for i in range(cfg.depth + 1)]
        k, norm, p = cfg.kernel_size, cfg.layer_norm, cfg.dropout
        self.depth = cfg.depth
        self.down = nn.ModuleList(
            ConvBlock(meta.channels if i == 0 else widths[i - 1], widths[i], k, norm, p) for i in range(cfg.depth + 1)
        )
        self.up = nn.ModuleList(nn.ConvTranspose1d(widths[i + 1], widths[i], 2, stride=2) for i in range(cfg.depth))
        self.dec = nn.ModuleList(ConvBlock(2 * widths[i], widths[i], k, norm, p) for i in range(cfg.depth))
        self.seq2seq = meta.task == "seq2seq"
        self.add_input = self.seq2seq and cfg.residual_output and meta.out_dim == meta.channels
        self.pooling = cfg.pooling
        self.attn_pool = AttentionPool(widths[0]) if cfg.pooling == "attention" and not self.seq2seq else None
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(widths[0], meta.out_dim)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        t = x.shape[1]
        h = F.pad(x, (0, 0, 0, (-t) % 2**self.depth))  # T divisible by 2^depth; cropped at the end
        lens = [lengths]
        masks = [length_mask(lengths, h.shape[1])]
        skips = []
        for i, block in enumerate(self.down):
            if i > 0:
                h = masked_downsample(h, masks[-1], 2)
                lens.append(downsample_lengths(lens[-1], 2))
                masks.append(length_mask(lens[-1], h.shape[1]))
            h = block(h, masks[-1])
            skips.append(h)
        for i in reversed(range(self.depth)):
            h = self.up[i](h.transpose(1, 2)).transpose(1, 2)
            h = self.dec[i](zero_padding(torch.cat([h, skips[i]], dim=-1), masks[i]), masks[i])
        h = h[:, :t]
        mask = masks[0][:, :t]
        if not self.seq2seq:
            return self.head(self.drop(pool(self.pooling, h, lengths, self.attn_pool)))
        out = self.head(h)
        if self.add_input:
            out = out + x
        return zero_padding(out, mask)


@MODELS.register("unet1d", config=UNet1DConfig)
def build_unet1d(cfg: UNet1DConfig, meta: DataMeta) -> nn.Module:
    """1D U-Net (depth, base channels) with per-step output for denoising; pooled head otherwise."""
    return UNet1D(cfg, meta)
