"""The MiniRocket transform (Dempster, Schmidt and Webb 2021) in PyTorch, on CPU or CUDA.

"MINIROCKET: A Very Fast (Almost) Deterministic Transform for Time Series Classification": 84
fixed kernels of length 9 (weight 2 at three of the nine taps, -1 at the other six, so each sums
to zero), each at a few dilations; every (dilation, kernel) pair has biases taken from quantiles
of its convolution output on one random training series, and each bias gives one feature, the
proportion of positive values (PPV) of that output minus the bias.  About 10,000 features.

Faithful to aeon's ``MiniRocket`` (aeon 1.6, adapted from the authors' code), which the parity
tests in tests/baselines check:

* the same dilations and features per dilation (``fit_dilations``: up to 32 dilations per kernel,
  spread exponentially up to (length - 1) / 8, the remainder of the feature count handed out one
  by one from the smallest dilation), the same quantiles (``quantiles``: the golden-ratio
  low-discrepancy sequence), the same padding rule (pair ``(j, k)`` of dilation index j and kernel
  k takes its PPV over the zero-padded output when ``j + k`` is even, over the unpadded part when
  odd) and the same channel combinations rule for multichannel series (each pair sums the
  convolutions of 1 to min(C, 9) random channels, exponentially more often few);
* the biases are quantiles of one training series' output, interpolated as numba's
  ``np.quantile`` does (aeon's fit runs in numba), so the same series gives the same biases;
* given aeon's fitted parameters (``MiniRocketParams``), ``transform`` gives aeon's features, up to
  float rounding at exact ties between an output value and a bias (the convolution sums in
  another order): the tests bound those mismatches.

What differs: the random choices of the fit (the series each pair's biases come from, the channel
combinations) use a ``torch.Generator`` seeded with ``seed``, so for the same seed the biases and
combinations differ from aeon's (same distribution, other draws).  Arithmetic is float32, as
aeon's (no TF32 on CUDA).  A pair's output on several channels is one ``conv1d`` whose weights are
zero off the pair's channels (the kernel is linear: the sum of the channels' convolutions, as
aeon's), all 84 kernels of a dilation at once, batched over series.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "MAX_DILATIONS_PER_KERNEL",
    "MIN_LENGTH",
    "N_KERNELS",
    "MiniRocketParams",
    "fit_biases",
    "fit_dilations",
    "quantiles",
    "transform",
]

KERNEL_LENGTH = 9
MIN_LENGTH = KERNEL_LENGTH  # a series must span one undilated kernel
#: The 84 kernels: the three taps (of nine) with weight 2; the other six are -1.
KERNEL_TAPS = tuple(combinations(range(KERNEL_LENGTH), 3))
N_KERNELS = len(KERNEL_TAPS)
MAX_DILATIONS_PER_KERNEL = 32
MAX_CHANNELS_PER_COMBINATION = 9
#: Elements (series x kernels x steps x features) one batch may compare at once: bounds memory.
BATCH_ELEMENTS = {"cpu": 2**22, "cuda": 2**27}


@dataclass(frozen=True)
class MiniRocketParams:
    """A fitted transform: what ``transform`` needs, nothing random left.

    ``biases``: ``[n_features]`` float32, ordered by dilation, then kernel, then quantile.
    ``channels``: ``[n_dilations, 84, C]`` bool, the channels each (dilation, kernel) pair sums.
    """

    dilations: tuple[int, ...]
    features_per_dilation: tuple[int, ...]
    biases: Tensor
    channels: Tensor

    @property
    def n_features(self) -> int:
        return N_KERNELS * sum(self.features_per_dilation)

    def to(self, device: torch.device | str) -> MiniRocketParams:
        """The same parameters with their tensors on ``device``."""
        return MiniRocketParams(
            self.dilations, self.features_per_dilation, self.biases.to(device), self.channels.to(device)
        )


def fit_dilations(
    length: int, n_features: int, max_dilations_per_kernel: int = MAX_DILATIONS_PER_KERNEL
) -> tuple[list[int], list[int]]:
    """The dilations for series of ``length`` steps and how many features each gets per kernel.

    ``n_features // 84`` features per kernel over at most ``max_dilations_per_kernel`` dilations
    ``2**e`` (e evenly spaced in [0, log2((length - 1) / 8)], truncated, duplicates merged and
    counted); counts scale to the features per kernel and the remainder goes one at a time from
    the smallest dilation up.  Computed with numpy's float64 arithmetic, exactly as aeon does.
    """
    per_kernel = n_features // N_KERNELS
    n_dilations = min(per_kernel, max_dilations_per_kernel)
    multiplier = per_kernel / n_dilations
    max_exponent = np.log2((length - 1) / (KERNEL_LENGTH - 1))
    grid = np.logspace(0, max_exponent, n_dilations, base=2).astype(np.int32)
    dilations, counts = np.unique(grid, return_counts=True)
    counts = (counts * multiplier).astype(np.int32)
    for i in range(per_kernel - int(counts.sum())):
        counts[i % len(counts)] += 1
    return [int(d) for d in dilations], [int(c) for c in counts]


def quantiles(n: int) -> np.ndarray:
    """The first ``n`` terms of the low-discrepancy sequence ``frac(i * golden ratio)``, i = 1..n (float32)."""
    return ((np.arange(1, n + 1) * ((np.sqrt(5) + 1) / 2)) % 1).astype(np.float32)


def kernels(device: torch.device | str = "cpu") -> Tensor:
    """The 84 kernels as conv1d weights ``[84, 1, 9]``: -1 everywhere, 2 at the kernel's three taps."""
    w = torch.full((N_KERNELS, 1, KERNEL_LENGTH), -1.0, device=device)
    taps = torch.tensor(KERNEL_TAPS, device=device)
    w[torch.arange(N_KERNELS, device=device)[:, None], 0, taps] = 2.0
    return w


@contextmanager
def _float32_convolutions() -> Iterator[None]:
    """cuDNN runs float32 convolutions in TF32 (10-bit mantissas) unless told not to: the features
    compare outputs with biases, so they stay float32, as aeon's."""
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = before


def _padding(dilation: int) -> int:
    """Zeros at each end of a series: the output keeps the series' length (4 x dilation)."""
    return (KERNEL_LENGTH - 1) * dilation // 2


def _convolve(x: Tensor, weights: Tensor, dilation: int, groups: int = 1) -> Tensor:
    """Each kernel's output ``[B, 84, L]`` on series ``x [B, C, L]``, zero-padded at each end.

    ``weights [84, C, 9]`` hold each kernel on its combination's channels and zero elsewhere (the
    convolution of a channel sum is the sum of the channels' convolutions); with ``groups=84``,
    ``x [B, 84, L]`` is each kernel's own input and ``weights [84, 1, 9]``.
    """
    return F.conv1d(x, weights, padding=_padding(dilation), dilation=dilation, groups=groups)


def _ppv(out: Tensor, biases: Tensor) -> Tensor:
    """``[B, K, F]``: the share of steps of ``out [B, K, L]`` above each kernel's biases ``[K, F]``."""
    above = out.new_empty(out.shape[0], out.shape[1], biases.shape[1], out.shape[2])
    torch.gt(out[:, :, None, :], biases[None, :, :, None], out=above)  # float 0/1: sums fast
    return above.sum(-1) / out.shape[-1]


def _features_at(j: int, out: Tensor, biases: Tensor, pad: int) -> Tensor:
    """The PPV features at dilation index ``j``, ``[B, 84 * F]`` in kernel order (``biases [84, F]``):
    kernel k's over all steps when ``j + k`` is even, over all but ``pad`` at each end when odd."""
    feats = out.new_empty(out.shape[0], N_KERNELS, biases.shape[1])
    full, cropped = (slice(0, None, 2), slice(1, None, 2)) if j % 2 == 0 else (slice(1, None, 2), slice(0, None, 2))
    feats[:, full] = _ppv(out[:, full], biases[full])
    feats[:, cropped] = _ppv(out[:, cropped, pad:-pad], biases[cropped])
    return feats.flatten(1)


def _batch_size(x: Tensor, params: MiniRocketParams, batch_size: int | None) -> int:
    if batch_size is not None:
        return batch_size
    budget = BATCH_ELEMENTS["cuda" if x.device.type == "cuda" else "cpu"]
    per_series = N_KERNELS * x.shape[-1] * max(params.features_per_dilation)
    return max(1, budget // per_series)


@torch.no_grad()
@_float32_convolutions()
def transform(x: Tensor, params: MiniRocketParams, batch_size: int | None = None) -> Tensor:
    """MiniRocket features ``[N, n_features]`` (float32, on ``x``'s device) of series ``x [N, C, L]``.

    Batches of ``batch_size`` series (by default as many as keep one batch's comparisons within
    ``BATCH_ELEMENTS``), so memory stays bounded for any N.
    """
    x = x.float()
    params = params.to(x.device)
    weights = kernels(x.device) * params.channels[:, :, :, None].float()  # [n_dilations, 84, C, 9]
    out = x.new_empty(x.shape[0], params.n_features)
    step = _batch_size(x, params, batch_size)
    for lo in range(0, x.shape[0], step):
        xb = x[lo : lo + step]
        start = 0
        for j, (d, f) in enumerate(zip(params.dilations, params.features_per_dilation, strict=True)):
            biases = params.biases[start : start + N_KERNELS * f].view(N_KERNELS, f)
            conv = _convolve(xb, weights[j], d)
            out[lo : lo + step, start : start + N_KERNELS * f] = _features_at(j, conv, biases, _padding(d))
            start += N_KERNELS * f
    return out


def _channel_combinations(n_pairs: int, n_channels: int, gen: torch.Generator) -> Tensor:
    """``[n_pairs, C]`` bool: per pair, 2**u (u uniform in [0, log2(min(C, 9) + 1))) truncated
    distinct random channels, i.e. 1 to min(C, 9) of them, few more often than many."""
    top = np.log2(min(n_channels, MAX_CHANNELS_PER_COMBINATION) + 1)
    counts = (2 ** (torch.rand(n_pairs, generator=gen, dtype=torch.float64) * top)).long()
    ranks = torch.rand(n_pairs, n_channels, generator=gen).argsort(1).argsort(1)
    return ranks < counts[:, None]


def _quantile(values: Tensor, q: Tensor) -> Tensor:
    """Per row of ``values [K, L]``, its quantiles ``q [K, F]``, interpolated linearly between the
    two nearest order statistics in float64 (the arithmetic of numba's ``np.quantile``, which
    aeon's fit runs), as float32."""
    s = values.double().sort(-1).values
    rank = 1 + (values.shape[-1] - 1) * ((q.double() * 100.0) / 100.0)
    below = rank.floor()
    m = rank - below
    lo = (below.long() - 1).clamp(0, values.shape[-1] - 1)
    hi = (lo + 1).clamp_max(values.shape[-1] - 1)
    return (s.gather(1, lo) * (1 - m) + s.gather(1, hi) * m).float()


def fit_biases(x: Tensor, dilations: list[int], counts: list[int], channels: Tensor, picks: Tensor) -> Tensor:
    """Each (dilation j, kernel k) pair's biases: quantiles of its full (padded) output on training
    series ``picks[j, k]`` of ``x [N, C, L]``, taken at the pair's terms of ``quantiles``."""
    q = torch.from_numpy(quantiles(N_KERNELS * sum(counts))).to(x.device)
    weights = kernels(x.device)
    biases, start = [], 0
    for j, (d, f) in enumerate(zip(dilations, counts, strict=True)):
        series = x[picks[j].to(x.device)]  # [84, C, L]: kernel k's own series
        summed = (series * channels[j].to(x.device, x.dtype)[:, :, None]).sum(1)
        conv = _convolve(summed[None], weights, d, groups=N_KERNELS)[0]
        biases.append(_quantile(conv, q[start : start + N_KERNELS * f].view(N_KERNELS, f)).flatten())
        start += N_KERNELS * f
    return torch.cat(biases)


@torch.no_grad()
@_float32_convolutions()
def fit(
    x: Tensor,
    n_features: int = 10_000,
    seed: int = 0,
    max_dilations_per_kernel: int = MAX_DILATIONS_PER_KERNEL,
) -> MiniRocketParams:
    """Fit MiniRocket on training series ``x [N, C, L]`` (L >= 9): dilations, channel combinations
    and biases.  ``n_features`` rounds down to a multiple of 84 (at least 84)."""
    x = x.float()
    n_channels, length = x.shape[1], x.shape[2]
    if length < MIN_LENGTH:
        raise ValueError(f"MiniRocket needs series of {MIN_LENGTH} steps or more (zero-pad them); got {length}")
    dilations, counts = fit_dilations(length, max(n_features, N_KERNELS), max_dilations_per_kernel)
    gen = torch.Generator().manual_seed(seed)
    channels = _channel_combinations(len(dilations) * N_KERNELS, n_channels, gen).view(len(dilations), N_KERNELS, -1)
    picks = torch.randint(x.shape[0], (len(dilations), N_KERNELS), generator=gen)
    biases = fit_biases(x, dilations, counts, channels, picks)
    return MiniRocketParams(tuple(dilations), tuple(counts), biases.float(), channels.to(x.device))
