"""Residual network for time-series classification (Wang, Yan & Oates 2017).

Wang Z., Yan W., Oates T., "Time series classification from scratch with deep neural networks:
a strong baseline", IJCNN 2017.  Settings of the paper and of the reference implementation
(hfawaz/dl-4-tsc, ``classifiers/resnet.py``; Ismail Fawaz et al. 2019): three residual blocks
of 64/128/128 filters, each three convs with kernels 8/5/3 (conv → BatchNorm, ReLU after the
first two), a shortcut of a 1x1 conv + BatchNorm (BatchNorm alone when the width is unchanged),
the sum followed by ReLU; global average pooling and a softmax layer.  No dropout in the paper.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field
from torch import Tensor, nn

from tunelab.config import ModelConfig, shape
from tunelab.data.base import DataMeta
from tunelab.models.base import PortfolioEntry, length_mask, masked_mean
from tunelab.models.fcn import ConvNorm
from tunelab.models.layers import MaskedBatchNorm1d, MaskedConv1d, zero_padding
from tunelab.registry import MODELS

__all__ = ["ResNet", "ResNetBlock", "ResNetConfig"]


class ResNetConfig(ModelConfig):
    """Residual blocks of three conv → BatchNorm layers (base_filters, then 2·base_filters), masked GAP."""

    name: Literal["resnet"] = "resnet"
    # the paper's training (dl-4-tsc): Adam lr 1e-3, no weight decay or dropout; a half-width group
    portfolio: ClassVar[PortfolioEntry] = PortfolioEntry(
        rank=1,
        groups={"base_filters": (64, 32)},
        start={"train.lr": 1e-3, "train.weight_decay": 1e-6, "model.dropout": 0.0, "data.augment.jitter": 0.0},
    )
    base_filters: int = shape(64, "filters of block 1; later blocks have twice as many (paper: 64/128/128)", ge=1)
    res_blocks: int = shape(3, "residual blocks (paper: 3)", ge=1)
    kernel_sizes: tuple[int, int, int] = shape((8, 5, 3), "kernels of the three convs in a block (paper: 8, 5, 3)")
    dropout: float = Field(0.0, ge=0, lt=1, description="before the head (the paper has none)")


class ResNetBlock(nn.Module):
    """Three ConvNorm layers plus a shortcut (1x1 conv + BatchNorm, or BatchNorm), then ReLU."""

    def __init__(self, c_in: int, c_out: int, kernels: tuple[int, int, int]) -> None:
        super().__init__()
        widths = [c_in, c_out, c_out, c_out]
        self.convs = nn.ModuleList(ConvNorm(widths[i], widths[i + 1], k, act=i < 2) for i, k in enumerate(kernels))
        self.short_conv = MaskedConv1d(c_in, c_out, 1, bias=False) if c_in != c_out else None
        self.short_norm = MaskedBatchNorm1d(c_out)
        self.act = nn.ReLU()

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        """``h`` zero at padded steps (the network zeroes its input; each layer's output is zeroed)."""
        z = h
        for conv in self.convs:
            z = conv(z, mask, zeroed=True)
        s = self.short_conv(h, mask, zeroed=True) if self.short_conv is not None else h
        return zero_padding(self.act(z + self.short_norm(s, mask)), mask)


class ResNet(nn.Module):
    """Residual blocks over ``[B, T, C]``, mean over valid steps, linear head."""

    def __init__(self, cfg: ResNetConfig, meta: DataMeta) -> None:
        super().__init__()
        widths = [cfg.base_filters] + [2 * cfg.base_filters] * (cfg.res_blocks - 1)
        c_in = [meta.channels, *widths[:-1]]
        self.blocks = nn.ModuleList(ResNetBlock(a, b, cfg.kernel_sizes) for a, b in zip(c_in, widths, strict=True))
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(widths[-1], meta.out_dim)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        mask = length_mask(lengths, x.shape[1])
        h = zero_padding(x, mask)
        for block in self.blocks:
            h = block(h, mask)
        return self.head(self.drop(masked_mean(h, mask)))


@MODELS.register("resnet", config=ResNetConfig)
def build_resnet(cfg: ResNetConfig, meta: DataMeta) -> nn.Module:
    """ResNet (Wang et al. 2017): 3 residual blocks of 3 convs (8/5/3), 64/128/128 filters, BatchNorm, GAP."""
    return ResNet(cfg, meta)
