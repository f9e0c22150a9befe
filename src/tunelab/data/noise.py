"""Denoising tasks from clean signals: add seeded noise at a requested signal-to-noise ratio.

``make_denoising`` turns any classification or regression dataset into a sequence-to-sequence
task: input = signal + noise, target = the clean signal.  Kinds of noise:

* ``white``  — independent Gaussian steps (flat spectrum);
* ``pink``   — coloured, power ∝ 1/f (white noise shaped in the frequency domain), mean removed;
* ``brown``  — power ∝ 1/f² (a random walk), mean removed;
* ``impulse`` — sparse spikes (about 5% of steps, at least one) of random sign and size.

SNR (dB) = 10·log10(Σ clean² / Σ noise²) over valid steps.  The noise of every sequence and
channel is scaled so that its own SNR is exactly the requested one (the usual way noise is mixed
into audio at a target SNR), hence so is every sequence's total; a channel that is all zeros
stays clean.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from tunelab.data.base import SequenceData
from tunelab.errors import UserError

__all__ = ["KINDS", "add_noise", "make_denoising", "measure_snr_db", "noise_like"]

KINDS = ("white", "pink", "brown", "impulse")
IMPULSE_RATE = 0.05


def _valid(x: Tensor, lengths: Tensor) -> Tensor:
    steps = torch.arange(x.shape[1], device=x.device)
    return (steps[None, :] < lengths[:, None]).unsqueeze(-1).to(x.dtype)


def _centre(noise: Tensor, m: Tensor) -> Tensor:
    mean = (noise * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp_min(1.0)
    return (noise - mean) * m


def noise_like(x: Tensor, lengths: Tensor, kind: str, generator: torch.Generator) -> Tensor:
    """Unscaled noise of ``kind`` with the shape of ``x [N, T, C]``, zero on padding."""
    n, t, c = x.shape
    m = _valid(x, lengths)
    white = torch.randn(n, t, c, generator=generator, device=x.device, dtype=torch.float64)
    if kind == "white":
        noise = white
    elif kind == "pink":
        spec = torch.fft.rfft(white, dim=1)
        f = torch.arange(spec.shape[1], device=x.device, dtype=torch.float64)
        shape = torch.where(f > 0, 1 / f.clamp_min(1.0).sqrt(), torch.zeros_like(f))  # amplitude ∝ f^-1/2: power ∝ 1/f
        noise = _centre(torch.fft.irfft(spec * shape[None, :, None], n=t, dim=1), m.double())
    elif kind == "brown":
        noise = _centre(white.cumsum(1), m.double())
    elif kind == "impulse":
        spikes = torch.rand(n, t, c, generator=generator, device=x.device, dtype=torch.float64) < IMPULSE_RATE
        first = (
            torch.rand(n, 1, c, generator=generator, device=x.device, dtype=torch.float64) * lengths[:, None, None]
        ).long()
        spikes |= (
            torch.arange(t, device=x.device)[None, :, None] == first
        )  # at least one spike per sequence and channel
        noise = spikes * white.sign() * (0.5 + white.abs())
    else:
        raise UserError(f"data.noise.kind={kind!r}: unknown noise; use one of {', '.join(KINDS)}")
    return noise * m.double()


def add_noise(x: Tensor, lengths: Tensor, kind: str, snr_db: float, generator: torch.Generator) -> Tensor:
    """``x`` plus noise of ``kind`` at exactly ``snr_db`` per sequence and channel (padding stays zero)."""
    if not math.isfinite(snr_db):
        raise UserError(f"data.noise.snr_db={snr_db}: must be a finite number of dB, e.g. 10")
    noise = noise_like(x, lengths, kind, generator)
    m = _valid(x, lengths).double()
    p_signal = (x.double() ** 2 * m).sum(1, keepdim=True)
    p_noise = (noise**2).sum(1, keepdim=True)
    target = p_signal / 10 ** (snr_db / 10)
    scale = torch.where(p_noise > 0, (target / p_noise.clamp_min(1e-300)).sqrt(), torch.zeros_like(p_noise))
    return (x.double() + noise * scale).to(x.dtype)


def measure_snr_db(clean: Tensor, noisy: Tensor, lengths: Tensor) -> Tensor:
    """Per-sequence SNR ``[N]`` in dB of ``noisy`` against ``clean`` over valid steps, all channels."""
    m = _valid(clean, lengths).double()
    p_signal = (clean.double() ** 2 * m).sum((1, 2))
    p_noise = ((noisy.double() - clean.double()) ** 2 * m).sum((1, 2)).clamp_min(1e-300)
    return 10 * torch.log10(p_signal / p_noise)


def make_denoising(data: SequenceData, kind: str, snr_db: float, seed: int) -> SequenceData:
    """A seq2seq copy of ``data``: input = ``data.x`` + noise at ``snr_db``, target = clean ``data.x``.

    The official split and extras are kept; the original labels are dropped.
    """
    if data.meta.task == "seq2seq":
        raise UserError(
            f"data.noise: '{data.meta.name}' is already a seq2seq task; data.noise turns classification or regression "
            "data into denoising — remove data.noise (synthetic_denoise takes data.options.kind/snr_db)"
        )
    gen = torch.Generator(device=data.x.device).manual_seed(seed)
    noisy = add_noise(data.x, data.lengths, kind, snr_db, gen)
    meta = dataclasses.replace(data.meta, task="seq2seq", n_classes=0, class_names=(), n_outputs=data.meta.channels)
    return dataclasses.replace(data, x=noisy, y=data.x.clone(), meta=meta)
