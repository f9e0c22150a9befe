"""InceptionTime's network for time-series classification (Ismail Fawaz et al. 2020).

Ismail Fawaz H., Lucas B., Forestier G., Pelletier C., Schmidt D. F., Weber J., Webb G. I.,
Idoumghar L., Muller P.-A., Petitjean F., "InceptionTime: Finding AlexNet for time series
classification", Data Mining and Knowledge Discovery 34, 2020.  Settings of the paper and of the
reference implementation (hfawaz/InceptionTime, ``classifiers/inception.py``): depth 6 Inception
modules with a residual connection every 3 (shortcut: 1x1 conv + BatchNorm, add, ReLU); each
module a 1x1 bottleneck of 32 filters (only when its input has more than one channel), three
convs of 32 filters with kernels 40/20/10 ('same' padding, i.e. ``kernel_size - 1 = 40`` halved
twice), and a max-pool (3, stride 1) branch followed by a 1x1 conv; the four branches
concatenated, then BatchNorm and ReLU; global average pooling and a softmax layer.  The paper's
ensemble of five such networks is not part of the model (train five trials for it).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from tunelab.config import ModelConfig, shape
from tunelab.data.base import DataMeta
from tunelab.models.base import PortfolioEntry, length_mask, masked_mean
from tunelab.models.layers import MaskedBatchNorm1d, MaskedConv1d, masked_max_pool, zero_padding
from tunelab.registry import MODELS

__all__ = ["InceptionModule", "InceptionTime", "InceptionTimeConfig"]


class InceptionTimeConfig(ModelConfig):
    """Inception modules (bottleneck, three long convs, max-pool branch), residual every 3, masked GAP."""

    name: Literal["inception_time"] = "inception_time"
    # the paper: Adam lr 1e-3, no weight decay or dropout; depth 6 and a shallow group of 3
    portfolio: ClassVar[PortfolioEntry] = PortfolioEntry(
        rank=0,
        groups={"num_modules": (6, 3)},
        start={"train.lr": 1e-3, "train.weight_decay": 1e-6, "model.dropout": 0.0, "data.augment.jitter": 0.0},
    )
    nb_filters: int = shape(32, "filters per branch; a module outputs 4x as many (paper: 32)", ge=1)
    num_modules: int = shape(6, "Inception modules (paper's depth: 6)", ge=1)
    bottleneck: int = shape(32, "1x1 bottleneck filters before the long convs; 0 = none (paper: 32)", ge=0)
    longest_kernel: int = shape(40, "kernel of the first conv branch; the others halve it (paper: 40/20/10)", ge=4)
    use_residual: bool = shape(True, "shortcut (1x1 conv + BatchNorm) around every 3 modules (paper: on)")
    dropout: float = Field(0.0, ge=0, lt=1, description="before the head (the paper has none)")


class InceptionModule(nn.Module):
    """Bottleneck → three convs of decreasing kernel, plus max-pool → 1x1 conv; concat → BN → ReLU."""

    def __init__(self, c_in: int, cfg: InceptionTimeConfig) -> None:
        super().__init__()
        f = cfg.nb_filters
        use_bottleneck = cfg.bottleneck > 0 and c_in > 1
        self.bottleneck = MaskedConv1d(c_in, cfg.bottleneck, 1, bias=False) if use_bottleneck else None
        c_mid = cfg.bottleneck if use_bottleneck else c_in
        kernels = [max(1, cfg.longest_kernel // 2**i) for i in range(3)]
        self.convs = nn.ModuleList(MaskedConv1d(c_mid, f, k, bias=False) for k in kernels)
        self.pool_conv = MaskedConv1d(c_in, f, 1, bias=False)
        self.norm = MaskedBatchNorm1d(4 * f)
        self.act = nn.ReLU()

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        # ``h`` is zero at padded steps (the network's input is zeroed, each module's output too),
        # and so are the bottleneck's output (a 1x1 conv without bias) and the max-pool branch:
        # the convs need not zero their inputs again (same values, a pass over each saved)
        z = self.bottleneck(h, mask, zeroed=True) if self.bottleneck is not None else h
        branches = [conv(z, mask, zeroed=True) for conv in self.convs]
        branches.append(self.pool_conv(masked_max_pool(h, mask, 3), mask, zeroed=True))
        return zero_padding(self.act(self.norm(torch.cat(branches, dim=-1), mask)), mask)


class Shortcut(nn.Module):
    """The residual path: 1x1 conv + BatchNorm of the input, added to the output, then ReLU."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = MaskedConv1d(c_in, c_out, 1, bias=False)
        self.norm = MaskedBatchNorm1d(c_out)
        self.act = nn.ReLU()

    def forward(self, h: Tensor, out: Tensor, mask: Tensor) -> Tensor:
        return zero_padding(self.act(out + self.norm(self.conv(h, mask, zeroed=True), mask)), mask)


class InceptionTime(nn.Module):
    """Inception modules over ``[B, T, C]`` with shortcuts every 3, mean over valid steps, linear head."""

    def __init__(self, cfg: InceptionTimeConfig, meta: DataMeta) -> None:
        super().__init__()
        width = 4 * cfg.nb_filters
        self.modules_ = nn.ModuleList(
            InceptionModule(meta.channels if i == 0 else width, cfg) for i in range(cfg.num_modules)
        )
        n_short = cfg.num_modules // 3 if cfg.use_residual else 0
        self.shortcuts = nn.ModuleList(Shortcut(meta.channels if j == 0 else width, width) for j in range(n_short))
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(width, meta.out_dim)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        mask = length_mask(lengths, x.shape[1])
        h = res = zero_padding(x, mask)
        for i, module in enumerate(self.modules_):
            h = module(h, mask)
            if i % 3 == 2 and i // 3 < len(self.shortcuts):
                h = res = self.shortcuts[i // 3](res, h, mask)
        return self.head(self.drop(masked_mean(h, mask)))


@MODELS.register("inception_time", config=InceptionTimeConfig)
def build_inception_time(cfg: InceptionTimeConfig, meta: DataMeta) -> nn.Module:
    """InceptionTime (Ismail Fawaz et al. 2020): 6 Inception modules, residual every 3, kernels 40/20/10, GAP."""
    return InceptionTime(cfg, meta)
