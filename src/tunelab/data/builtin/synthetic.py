"""Seeded synthetic datasets for tests, demos and benchmarks (generated on the fly, no files).

Options come from ``data.options`` as keyword arguments, e.g.
``data.name=synthetic_gestures data.options='{n: 300, classes: 4, channels: 3}'``.
The same options and ``seed`` always give the same data.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tunelab.data.base import DataMeta, SequenceData
from tunelab.data.noise import KINDS, add_noise
from tunelab.errors import UserError
from tunelab.registry import DATASETS

__all__ = ["synthetic_denoise", "synthetic_gestures", "synthetic_regression"]


def _check(dataset: str, n: int, channels: int, min_len: int, max_len: int) -> None:
    if n < 2:
        raise UserError(f"data.options.n={n}: {dataset} needs at least 2 sequences")
    if channels < 1:
        raise UserError(f"data.options.channels={channels}: {dataset} needs at least 1 channel")
    if not 1 <= min_len <= max_len:
        raise UserError(f"data.options.min_len/max_len={min_len}/{max_len}: need 1 <= min_len <= max_len")


def _lengths(n: int, min_len: int, max_len: int, g: torch.Generator) -> Tensor:
    return torch.randint(min_len, max_len + 1, (n,), generator=g)


def _mask(lengths: Tensor, t: int) -> Tensor:
    return (torch.arange(t)[None, :] < lengths[:, None]).unsqueeze(-1).float()


@DATASETS.register("synthetic_gestures")
def synthetic_gestures(
    *,
    n: int = 600,
    channels: int = 3,
    classes: int = 6,
    min_len: int = 20,
    max_len: int = 60,
    noise: float = 0.3,
    seed: int = 0,
) -> SequenceData:
    """Gesture-like classification: each class a smooth per-channel trajectory, varied in tempo, size and length."""
    _check("synthetic_gestures", n, channels, min_len, max_len)
    if classes < 2:
        raise UserError(f"data.options.classes={classes}: synthetic_gestures needs at least 2 classes")
    g = torch.Generator().manual_seed(seed)
    harmonics = 3
    amp = torch.randn(classes, channels, harmonics, generator=g) / torch.arange(
        1, harmonics + 1
    )  # smooth: weaker high harmonics
    phase = torch.rand(classes, channels, harmonics, generator=g) * 2 * math.pi
    y = torch.arange(n) % classes
    y = y[torch.randperm(n, generator=g)]
    lengths = _lengths(n, min_len, max_len, g)
    t = torch.arange(max_len).float()
    u = (t[None, :] / (lengths[:, None] - 1).clamp_min(1)).clamp(0, 1)  # each gesture spans its own length
    tempo = torch.exp(0.25 * torch.randn(n, 1, generator=g))  # faster or slower in the middle
    u = u**tempo
    size = torch.exp(0.2 * torch.randn(n, 1, 1, generator=g))
    j = torch.arange(1, harmonics + 1).float()
    arg = 2 * math.pi * j * u[:, :, None, None] + phase[y][:, None]  # [n, T, C, H]
    x = (amp[y][:, None] * torch.sin(arg)).sum(-1) * size
    x = x + noise * torch.randn(x.shape, generator=g)
    x = x * _mask(lengths, max_len)
    names = tuple(f"gesture_{k}" for k in range(classes))
    meta = DataMeta("synthetic_gestures", channels, max_len, "classification", classes, names, classes)
    return _trim(SequenceData(x=x, lengths=lengths, y=y, meta=meta))


@DATASETS.register("synthetic_denoise")
def synthetic_denoise(
    *,
    n: int = 400,
    channels: int = 1,
    min_len: int = 64,
    max_len: int = 256,
    kind: str = "white",
    snr_db: float = 5.0,
    seed: int = 0,
) -> SequenceData:
    """Denoising (seq2seq): sums of enveloped sinusoids plus seeded noise at ``snr_db``; target = clean."""
    _check("synthetic_denoise", n, channels, min_len, max_len)
    if kind not in KINDS:
        raise UserError(f"data.options.kind={kind!r}: unknown noise; use one of {', '.join(KINDS)}")
    g = torch.Generator().manual_seed(seed)
    lengths = _lengths(n, min_len, max_len, g)
    t = torch.arange(max_len).float()
    tones = 3
    freq = 0.005 + 0.1 * torch.rand(n, 1, channels, tones, generator=g)  # cycles per step
    phase = torch.rand(n, 1, channels, tones, generator=g) * 2 * math.pi
    amp = torch.rand(n, 1, channels, tones, generator=g) + 0.2
    clean = (amp * torch.sin(2 * math.pi * freq * t[None, :, None, None] + phase)).sum(-1)
    centre = torch.rand(n, 1, 1, generator=g) * lengths[:, None, None]
    width = (0.3 + 0.5 * torch.rand(n, 1, 1, generator=g)) * lengths[:, None, None]
    clean = clean * torch.exp(-(((t[None, :, None] - centre) / width) ** 2))  # a smooth burst, like a sound event
    clean = clean * _mask(lengths, max_len)
    noisy = add_noise(clean, lengths, kind, snr_db, g)
    meta = DataMeta("synthetic_denoise", channels, max_len, "seq2seq", 0, (), channels)
    return _trim(SequenceData(x=noisy, lengths=lengths, y=clean, meta=meta))


@DATASETS.register("synthetic_regression")
def synthetic_regression(
    *,
    n: int = 400,
    channels: int = 2,
    min_len: int = 20,
    max_len: int = 60,
    noise: float = 0.1,
    seed: int = 0,
) -> SequenceData:
    """Regression: predict the amplitude and frequency of the sinusoid in channel 0 (others are distractors)."""
    _check("synthetic_regression", n, channels, min_len, max_len)
    g = torch.Generator().manual_seed(seed)
    lengths = _lengths(n, min_len, max_len, g)
    t = torch.arange(max_len).float()
    amp = 0.5 + 1.5 * torch.rand(n, generator=g)
    freq = 0.02 + 0.13 * torch.rand(n, generator=g)  # cycles per step
    phase = torch.rand(n, generator=g) * 2 * math.pi
    x = torch.randn(n, max_len, channels, generator=g).cumsum(1) * 0.1  # random-walk distractors
    x[:, :, 0] = amp[:, None] * torch.sin(2 * math.pi * freq[:, None] * t[None, :] + phase[:, None])
    x = x + noise * torch.randn(x.shape, generator=g)
    x = x * _mask(lengths, max_len)
    y = torch.stack([amp, freq * 10], dim=1)  # both targets of order 1
    meta = DataMeta("synthetic_regression", channels, max_len, "regression", 0, (), 2)
    return _trim(SequenceData(x=x, lengths=lengths, y=y, meta=meta))


def _trim(data: SequenceData) -> SequenceData:
    """Drop time steps past the longest sequence (max_len is an upper bound, not a promise)."""
    import dataclasses

    t = int(data.lengths.max())
    y = data.y[:, :t] if data.meta.task == "seq2seq" else data.y
    return dataclasses.replace(
        data, x=data.x[:, :t].contiguous(), y=y.contiguous(), meta=dataclasses.replace(data.meta, max_len=t)
    )
