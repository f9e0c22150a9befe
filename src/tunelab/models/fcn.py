"""Fully convolutional network for time-series classification (Wang, Yan & Oates 2017).

Wang Z., Yan W., Oates T., "Time series classification from scratch with deep neural networks:
a strong baseline", IJCNN 2017.  Settings of the paper and of the reference implementation
(hfawaz/dl-4-tsc, ``classifiers/fcn.py``; Ismail Fawaz et al. 2019): three conv blocks of
128/256/128 filters with kernels 8/5/3 ('same' padding), each conv → BatchNorm → ReLU, global
average pooling and a softmax layer.  No dropout in the paper (our default 0).  Convs followed by BatchNorm have no
bias here (the mean subtraction makes it redundant).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field
from torch import Tensor, nn

from tunelab.config import ModelConfig, shape
from tunelab.data.base import DataMeta
from tunelab.models.base import PortfolioEntry, length_mask, masked_mean
from tunelab.models.layers import MaskedBatchNorm1d, MaskedConv1d, zero_padding
from tunelab.registry import MODELS

__all__ = ["FCN", "FCNConfig", "ConvNorm"]


class FCNConfig(ModelConfig):
    """Three conv → BatchNorm → ReLU blocks (width, 2·width, width filters), masked GAP, linear head."""

    name: Literal["fcn"] = "fcn"
    # the paper's training (dl-4-tsc): Adam lr 1e-3, no weight decay or dropout; a half-width group
    portfolio: ClassVar[PortfolioEntry] = PortfolioEntry(
        rank=2,
        groups={"width": (128, 64)},
        start={"train.lr": 1e-3, "train.weight_decay": 1e-6, "model.dropout": 0.0, "data.augment.jitter": 0.0},
    )
    width: int = shape(128, "filters of blocks 1 and 3; block 2 has twice as many (paper: 128/256/128)", ge=1)
    kernel_sizes: tuple[int, int, int] = shape((8, 5, 3), "kernel of each block in steps (paper: 8, 5, 3)")
    dropout: float = Field(0.0, ge=0, lt=1, description="before the head (the paper has none)")


class ConvNorm(nn.Module):
    """Masked 'same' conv → masked BatchNorm (statistics over valid steps) → optional ReLU; padding re-zeroed."""

    def __init__(self, c_in: int, c_out: int, kernel: int, *, act: bool = True) -> None:
        super().__init__()
        # no bias: BatchNorm subtracts the mean, so a bias gets only rounding noise as its
        # gradient, which Adam would turn into full-size steps
        self.conv = MaskedConv1d(c_in, c_out, kernel, bias=False)
        self.norm = MaskedBatchNorm1d(c_out)
        self.act = nn.ReLU() if act else nn.Identity()

    def forward(self, h: Tensor, mask: Tensor, zeroed: bool = False) -> Tensor:
        """``zeroed``: ``h`` is zero at padded steps already (a previous layer's output)."""
        return zero_padding(self.act(self.norm(self.conv(h, mask, zeroed), mask)), mask)


class FCN(nn.Module):
    """Conv blocks over ``[B, T, C]``, mean over valid steps, linear head."""

    def __init__(self, cfg: FCNConfig, meta: DataMeta) -> None:
        super().__init__()
        widths = [cfg.width, 2 * cfg.width, cfg.width]
        c_in = [meta.channels, *widths[:-1]]
        self.blocks = nn.ModuleList(ConvNorm(a, b, k) for a, b, k in zip(c_in, widths, cfg.kernel_sizes, strict=True))
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.width, meta.out_dim)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        mask = length_mask(lengths, x.shape[1])
        h = x
        for i, block in enumerate(self.blocks):
            h = block(h, mask, zeroed=i > 0)
        return self.head(self.drop(masked_mean(h, mask)))


@MODELS.register("fcn", config=FCNConfig)
def build_fcn(cfg: FCNConfig, meta: DataMeta) -> nn.Module:
    """FCN (Wang et al. 2017): conv blocks 128/256/128, kernels 8/5/3, BatchNorm, global average pooling."""
    return FCN(cfg, meta)
