"""A tunelab plugin: a small ConvGRU over short image sequences (seed 003's ResNet+ConvGRU core).

Use it with any command that takes ``--plugin``::

    tunelab train --plugin examples/plugins/conv_gru_video.py --config examples/plugins/conv_gru_video.yaml

Data layout: each frame is stored **flattened in x**, so ``x [samples, T, H*W]`` is an ordinary
padded sequence (``lengths`` counts frames) and every built-in tool — batching, trimming, padding
masks, normalisation — works unchanged; the model reshapes each step back to ``[1, H, W]``.
``model.frame_size`` must match the data (``channels == frame_size**2``).

The model reports a learnable temporal constant (seed 003's Polar ``alpha``, kept in logit space
so it stays in (0, 1)) through ``extra_scalars()``; the trainer logs it every epoch as
``extra/alpha``.

The synthetic task: a bright blob moves one pixel per frame over noise (wrapping at the edges);
the class is its direction (up, down, left, right) — invisible in any single frame.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from tunelab import register_dataset, register_model
from tunelab.config import ModelConfig, shape
from tunelab.data.base import DataMeta, SequenceData
from tunelab.errors import UserError

__all__ = ["ConvGRUCell", "ConvGRUVideo", "ConvGRUVideoConfig", "load_moving_blobs"]

DIRECTIONS = ("up", "down", "left", "right")
_STEPS = ((-1, 0), (1, 0), (0, -1), (0, 1))


@register_dataset("moving_blobs")
def load_moving_blobs(
    *, n: int = 800, size: int = 8, min_frames: int = 5, max_frames: int = 10, noise: float = 0.3, seed: int = 0
) -> SequenceData:
    """Frames ``size x size`` of a blob moving in one of four directions, flattened to ``x [n, T, size*size]``."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % len(DIRECTIONS)
    y = y[torch.randperm(n, generator=g)]
    lengths = torch.randint(min_frames, max_frames + 1, (n,), generator=g)
    start = torch.randint(0, size, (n, 2), generator=g)
    step = torch.tensor(_STEPS)[y]  # [n, 2] pixels per frame
    t = torch.arange(max_frames)
    pos = (start[:, None, :] + step[:, None, :] * t[None, :, None]) % size  # [n, T, 2]
    grid = torch.arange(size)
    dist = (grid - pos[..., None]).abs()  # [n, T, 2, size]
    dist = torch.minimum(dist, size - dist)  # on the torus
    blob = torch.exp(-(dist[:, :, 0, :, None] ** 2 + dist[:, :, 1, None, :] ** 2) / 1.5)  # a ~3x3 blob
    frames = blob + noise * torch.randn(n, max_frames, size, size, generator=g)  # plus background noise
    x = frames.flatten(2) * (t[None, :] < lengths[:, None]).unsqueeze(-1)
    meta = DataMeta(
        "moving_blobs", channels=size * size, max_len=max_frames, n_classes=len(DIRECTIONS), class_names=DIRECTIONS
    )
    return SequenceData(x=x, lengths=lengths, y=y, meta=meta)


class ConvGRUVideoConfig(ModelConfig):
    """Conv encoder per frame, a ConvGRU over frames, an exponential trace with a learned constant."""

    example_dataset: ClassVar[str] = "moving_blobs"  # the model tests build their inputs from it

    name: Literal["conv_gru_video"] = "conv_gru_video"
    frame_size: int = shape(8, "frame height = width in pixels (data channels = frame_size**2)", ge=1)
    channels: int = shape(16, "feature maps of the encoder and the ConvGRU state", ge=1)
    kernel_size: int = shape(3, "odd kernel of the encoder and gate convs", ge=1)
    layer_norm: bool = shape(True, "GroupNorm(1) on the candidate state (seed 003's ConvGRU layer norm)")
    alpha_init: float = Field(0.8, gt=0, lt=1, description="initial temporal constant of the readout trace (learned)")
    dropout: float = Field(0.1, ge=0, lt=1, description="before the head")


class ConvGRUCell(nn.Module):
    """GRU whose gates are convolutions over the state's feature maps (Shi et al. 2015)."""

    def __init__(self, channels: int, kernel: int, norm: bool) -> None:
        super().__init__()
        pad = kernel // 2
        self.gates = nn.Conv2d(2 * channels, 2 * channels, kernel, padding=pad)
        self.candidate = nn.Conv2d(2 * channels, channels, kernel, padding=pad)
        self.norm = nn.GroupNorm(1, channels) if norm else nn.Identity()

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        update, reset = torch.sigmoid(self.gates(torch.cat([x, h], 1))).chunk(2, dim=1)
        cand = torch.tanh(self.norm(self.candidate(torch.cat([x, reset * h], 1))))
        return (1 - update) * h + update * cand


class ConvGRUVideo(nn.Module):
    """Frames → conv features → ConvGRU; a trace ``s = alpha*s + (1-alpha)*h`` feeds the head.

    Padded frames leave the state and the trace unchanged, so the output is that of the last
    valid frame whatever padding follows.
    """

    def __init__(self, cfg: ConvGRUVideoConfig, meta: DataMeta) -> None:
        super().__init__()
        if meta.channels != cfg.frame_size**2:
            raise UserError(
                f"model.frame_size={cfg.frame_size} does not match {meta.name}: {meta.channels} values per step "
                f"is not {cfg.frame_size}x{cfg.frame_size}; set model.frame_size={math.isqrt(meta.channels)}"
            )
        self.size = cfg.frame_size
        pad = cfg.kernel_size // 2
        self.encoder = nn.Sequential(nn.Conv2d(1, cfg.channels, cfg.kernel_size, padding=pad), nn.GELU())
        self.cell = ConvGRUCell(cfg.channels, cfg.kernel_size, cfg.layer_norm)
        self.h0 = nn.Parameter(torch.zeros(1, cfg.channels, 1, 1))  # learnable initial state (seed 003)
        self.alpha_logit = nn.Parameter(torch.logit(torch.tensor(cfg.alpha_init)))
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.channels, meta.out_dim)

    @property
    def alpha(self) -> Tensor:
        """The temporal constant, in (0, 1)."""
        return torch.sigmoid(self.alpha_logit)

    def extra_scalars(self) -> dict[str, float]:
        """Learned constants the trainer logs as ``extra/<name>``."""
        return {"alpha": float(self.alpha.detach())}

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        b, t, _ = x.shape
        frames = self.encoder(x.reshape(b * t, 1, self.size, self.size)).view(b, t, -1, self.size, self.size)
        h = self.h0.expand(b, -1, self.size, self.size)
        trace = torch.zeros_like(h)
        alpha = self.alpha
        for step in range(t):
            valid = (step < lengths).view(b, 1, 1, 1)
            h = torch.where(valid, self.cell(frames[:, step], h), h)
            trace = torch.where(valid, alpha * trace + (1 - alpha) * h, trace)
        return self.head(self.drop(trace.mean(dim=(2, 3))))


@register_model("conv_gru_video", config=ConvGRUVideoConfig)
def build_conv_gru_video(cfg: ConvGRUVideoConfig, meta: DataMeta) -> nn.Module:
    """ConvGRU over flattened image frames with a learned temporal constant (extra/alpha)."""
    return ConvGRUVideo(cfg, meta)
