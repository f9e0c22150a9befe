"""Train-batch augmentations on device tensors: jitter, magnitude scaling, time warping, time masking.

Each strength (``AugmentConfig``) is a hyperparameter and 0 switches that augmentation off; with
all of them 0 the batch is returned untouched and no random numbers are drawn.  Every operation
is vectorised over the batch (no per-sample Python loop, no host sync) and respects each
sequence's length: warping and masking act within the valid steps, and padding stays zero.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from tunelab.config import AugmentConfig

__all__ = ["augment", "time_mask", "time_warp"]

WARP_KNOTS = 4  # speed changes per sequence: smooth, gesture-like tempo variation


def augment(x: Tensor, lengths: Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None) -> Tensor:
    """Augment a training batch ``x [B, T, C]`` (valid steps ``lengths [B]``); returns a new tensor.

    Order: time warp, magnitude scaling, jitter, time mask — so a masked span is exactly zero.
    ``generator`` must live on ``x``'s device.
    """
    if not (cfg.jitter or cfg.scale or cfg.time_warp or cfg.time_mask):
        return x
    b, t, c = x.shape
    valid = (torch.arange(t, device=x.device)[None, :] < lengths[:, None]).unsqueeze(-1)
    if cfg.time_warp:
        x = time_warp(x, lengths, cfg.time_warp, generator)
    if cfg.scale:
        x = x * (1 + cfg.scale * torch.randn(b, 1, c, generator=generator, device=x.device, dtype=x.dtype))
    if cfg.jitter:
        x = x + cfg.jitter * torch.randn(b, t, c, generator=generator, device=x.device, dtype=x.dtype)
    if cfg.time_mask:
        x = time_mask(x, lengths, cfg.time_mask, generator)
    return torch.where(valid, x, torch.zeros((), dtype=x.dtype, device=x.device))


def time_warp(x: Tensor, lengths: Tensor, strength: float, generator: torch.Generator | None = None) -> Tensor:
    """Resample each sequence along a smooth random monotone time map that keeps its two ends.

    The local playback speed is ``exp(strength * s(u))`` with ``s`` a piecewise-linear random curve
    over ``WARP_KNOTS`` segments; step ``t`` reads the input at the speed's normalised cumulative
    sum, by linear interpolation.
    """
    b, t, _ = x.shape
    dev = x.device
    lens = lengths.to(dev)
    span = (lens - 1).clamp_min(1).to(x.dtype)
    steps = torch.arange(t, device=dev, dtype=x.dtype)
    u = (steps[None, :] / span[:, None]).clamp(0, 1) * WARP_KNOTS  # knot coordinate of each step
    knots = torch.randn(b, WARP_KNOTS + 1, generator=generator, device=dev, dtype=x.dtype)
    lo = u.floor().long().clamp(max=WARP_KNOTS - 1)
    frac = u - lo
    curve = knots.gather(1, lo) * (1 - frac) + knots.gather(1, lo + 1) * frac
    speed = torch.exp(strength * curve)
    speed = speed * (steps[None, :] < (lens - 1)[:, None])  # t-1 intervals between t valid steps
    pos = torch.cumsum(speed, 1) - speed  # position before each interval: 0 at step 0
    total = pos.gather(1, (lens - 1).clamp_min(0)[:, None]).clamp_min(1e-12)
    pos = pos / total * span[:, None]
    pos = torch.minimum(pos, (lens - 1).to(x.dtype)[:, None]).clamp_min(0)
    left = pos.floor().long()
    right = (left + 1).clamp(max=t - 1)
    w = (pos - left).unsqueeze(-1)
    c = x.shape[2]
    xl = x.gather(1, left.unsqueeze(-1).expand(-1, -1, c))
    xr = x.gather(1, right.unsqueeze(-1).expand(-1, -1, c))
    out = xl * (1 - w) + xr * w
    valid = (steps[None, :] < lens[:, None].to(x.dtype)).unsqueeze(-1)
    return torch.where(valid, out, torch.zeros((), dtype=x.dtype, device=dev))


def time_mask(x: Tensor, lengths: Tensor, fraction: float, generator: torch.Generator | None = None) -> Tensor:
    """Zero one contiguous span of ``round(fraction * length)`` valid steps per sequence."""
    b, t, _ = x.shape
    dev = x.device
    lens = lengths.to(dev)
    width = torch.round(fraction * lens.to(x.dtype)).long()
    room = (lens - width + 1).clamp_min(1)
    start = (torch.rand(b, generator=generator, device=dev) * room).long()
    steps = torch.arange(t, device=dev)[None, :]
    masked = (steps >= start[:, None]) & (steps < (start + width)[:, None])
    return torch.where(masked.unsqueeze(-1), torch.zeros((), dtype=x.dtype, device=dev), x)
