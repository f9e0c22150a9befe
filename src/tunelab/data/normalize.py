"""Per-channel normalisation with statistics from valid (unpadded) steps of the training split.

Padding never enters a statistic and stays exactly zero after normalising, so models and losses
see the same padding convention before and after.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["apply_stats", "channel_stats", "rms_stats"]

EPS = 1e-8


def _valid(x: Tensor, lengths: Tensor) -> Tensor:
    steps = torch.arange(x.shape[1], device=x.device)
    return (steps[None, :] < lengths[:, None]).unsqueeze(-1).to(x.dtype)


def channel_stats(x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std ``[C]`` over the valid steps of ``x [N, T, C]`` (float64 sums).

    A constant channel gets std 1, so it normalises to zeros instead of dividing by zero.
    """
    m = _valid(x, lengths).double()
    xd = x.double()
    count = m.sum((0, 1)).clamp_min(1.0)
    mean = (xd * m).sum((0, 1)) / count
    var = (((xd - mean) * m) ** 2).sum((0, 1)) / count
    std = var.sqrt()
    std = torch.where(std > EPS, std, torch.ones_like(std))
    return mean.float(), std.float()


def rms_stats(x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Zero means and per-channel root-mean-square ``[C]``: a scale-only normalisation.

    Used for denoising (seq2seq with as many target as input channels): input and target are
    divided by the same numbers and not centred, so a signal-to-noise ratio measured after
    normalising equals the one before.
    """
    m = _valid(x, lengths).double()
    count = m.sum((0, 1)).clamp_min(1.0)
    rms = ((x.double() ** 2 * m).sum((0, 1)) / count).sqrt()
    rms = torch.where(rms > EPS, rms, torch.ones_like(rms))
    return torch.zeros_like(rms).float(), rms.float()


def apply_stats(x: Tensor, lengths: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """``(x - mean) / std`` on valid steps; padding stays exactly zero."""
    valid = _valid(x, lengths).bool()
    return torch.where(
        valid, (x - mean.to(x)) / std.to(x), torch.zeros((), dtype=x.dtype, device=x.device)
    )  # +0.0, not -0.0
