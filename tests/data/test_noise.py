"""Denoising noise: measured SNR within 0.5 dB of the request, seeded, coloured as named."""

from __future__ import annotations

import pytest
import torch

from tunelab.config import DataConfig, NoiseConfig
from tunelab.data import add_noise, load_dataset, make_denoising, measure_snr_db
from tunelab.data.noise import KINDS, noise_like


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("snr", [-5.0, 0.0, 10.0, 30.0])
def test_snr_matches_request(kind: str, snr: float) -> None:
    clean = load_dataset(DataConfig(name="synthetic_gestures", options={"n": 40}))
    noisy = add_noise(clean.x, clean.lengths, kind, snr, torch.Generator().manual_seed(0))
    measured = measure_snr_db(clean.x, noisy, clean.lengths)
    assert (measured - snr).abs().max() < 0.5
    overall = 10 * torch.log10(clean.x.double().pow(2).sum() / (noisy - clean.x).double().pow(2).sum())
    assert abs(float(overall) - snr) < 0.5
    pad = noisy[~clean.mask()]
    assert torch.equal(pad, torch.zeros_like(pad))


def test_seeded_and_kinds_differ() -> None:
    x = torch.randn(8, 64, 2)
    lengths = torch.full((8,), 64)
    a = add_noise(x, lengths, "pink", 5.0, torch.Generator().manual_seed(1))
    b = add_noise(x, lengths, "pink", 5.0, torch.Generator().manual_seed(1))
    c = add_noise(x, lengths, "pink", 5.0, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def low_share(noise: torch.Tensor) -> float:
    """Fraction of power in the lowest eighth of frequencies."""
    p = torch.fft.rfft(noise, dim=1).abs().pow(2).sum((0, 2))
    return float(p[1 : len(p) // 8].sum() / p[1:].sum())


def test_noise_colours() -> None:
    x = torch.ones(64, 256, 1)
    lengths = torch.full((64,), 256)
    g = torch.Generator().manual_seed(0)
    white, pink, brown = (low_share(noise_like(x, lengths, k, g)) for k in ("white", "pink", "brown"))
    assert 0.08 < white < 0.18  # flat: about 1/8 of the power
    assert pink > 2 * white and brown > pink  # 1/f, then 1/f²: ever more low-frequency power
    impulse = noise_like(x, lengths, "impulse", g)
    share = float((impulse != 0).float().mean())
    assert 0.03 < share < 0.08  # sparse spikes


def test_make_denoising_from_a_classification_dataset() -> None:
    jv = load_dataset(DataConfig())
    d = load_dataset(DataConfig(noise=NoiseConfig(kind="brown", snr_db=3.0)), seed=0)
    assert d.meta.task == "seq2seq" and d.meta.n_outputs == 12 and d.meta.n_classes == 0
    assert torch.equal(d.y, jv.x) and torch.equal(d.split, jv.split)
    assert (measure_snr_db(d.y, d.x, d.lengths) - 3.0).abs().max() < 0.5
    again = load_dataset(DataConfig(noise=NoiseConfig(kind="brown", snr_db=3.0)), seed=0)
    assert torch.equal(d.x, again.x)
    with pytest.raises(Exception, match="already a seq2seq task"):
        make_denoising(d, "white", 0.0, 0)
