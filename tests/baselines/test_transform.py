"""The torch MiniRocket transform against aeon's (where aeon is installed): the same fitted
settings, the same features from the same parameters, biases that come from one training series."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tunelab.baselines import transform as mr

aeon_minirocket = pytest.importorskip("aeon.transformations.collection.convolution_based._minirocket")

#: Exact ties between an output and a bias may round either way when the convolution sums in
#: another order: at most this share of features may differ, each by a few steps' worth of PPV.
TIE_SHARE = 1e-3


def from_aeon(fitted: aeon_minirocket.MiniRocket, n_channels: int) -> mr.MiniRocketParams:
    """aeon's fitted parameters (channel counts and indices, dilations, features per dilation,
    biases) as ``MiniRocketParams``."""
    per_pair, indices, dilations, counts, biases = fitted.parameters
    channels = torch.zeros(len(per_pair), n_channels, dtype=torch.bool)
    ends = np.cumsum(per_pair)
    for pair, (end, n) in enumerate(zip(ends, per_pair, strict=True)):
        channels[pair, torch.as_tensor(indices[end - n : end], dtype=torch.long)] = True
    return mr.MiniRocketParams(
        tuple(int(d) for d in dilations),
        tuple(int(c) for c in counts),
        torch.as_tensor(biases),
        channels.view(len(dilations), mr.N_KERNELS, n_channels),
    )


def panel(n: int, channels: int, length: int, seed: int, dyadic: bool) -> np.ndarray:
    """Random series; ``dyadic`` rounds them to eighths, so every convolution sum is exact in float32."""
    x = np.random.default_rng(seed).standard_normal((n, channels, length)).astype(np.float32)
    return np.round(x * 8) / 8 if dyadic else x


def aeon_fit(x: np.ndarray, n_features: int, seed: int = 1) -> aeon_minirocket.MiniRocket:
    return aeon_minirocket.MiniRocket(n_kernels=n_features, random_state=seed).fit(x)


@pytest.mark.parametrize("length", [9, 10, 29, 150, 1000, 5000])
@pytest.mark.parametrize("n_features", [84, 500, 1000, 10_000, 50_000])
def test_dilations_and_features_per_dilation_are_aeons(length: int, n_features: int) -> None:
    dilations, counts = aeon_minirocket._fit_dilations(length, n_features, 32)
    assert mr.fit_dilations(length, n_features) == (dilations.tolist(), counts.tolist())


def test_quantiles_are_aeons() -> None:
    for n in (84, 924, 9996):
        assert np.array_equal(mr.quantiles(n), aeon_minirocket._quantiles(n))


@pytest.mark.parametrize("channels,length", [(1, 50), (3, 40), (12, 30)])
def test_own_fit_has_aeons_settings(channels: int, length: int) -> None:
    x = panel(12, channels, length, seed=0, dyadic=False)
    ours, theirs = mr.fit(torch.from_numpy(x), 1000, seed=0), from_aeon(aeon_fit(x, 1000), channels)
    assert (ours.dilations, ours.features_per_dilation) == (theirs.dilations, theirs.features_per_dilation)
    assert ours.biases.shape == theirs.biases.shape and ours.channels.shape == theirs.channels.shape
    per_pair = ours.channels.sum(-1)
    assert per_pair.min() >= 1 and per_pair.max() <= min(channels, 9)
    if channels > 2:  # few channels more often than many, as aeon draws them
        assert (per_pair == 1).sum() > (per_pair == min(channels, 9)).sum()


@pytest.mark.parametrize("channels,length", [(1, 50), (3, 40), (12, 30)])
def test_features_equal_aeons_exactly_when_sums_are_exact(channels: int, length: int) -> None:
    x = panel(20, channels, length, seed=1, dyadic=True)
    fitted = aeon_fit(x, 1000)
    ours = mr.transform(torch.from_numpy(x), from_aeon(fitted, channels))
    assert torch.equal(ours, torch.from_numpy(fitted.transform(x)))


@pytest.mark.parametrize("channels,length", [(1, 120), (4, 60)])
def test_features_equal_aeons_up_to_rounding_at_ties(channels: int, length: int) -> None:
    x = panel(30, channels, length, seed=2, dyadic=False)
    fitted = aeon_fit(x, 10_000)
    ours = mr.transform(torch.from_numpy(x), from_aeon(fitted, channels))
    diff = (ours - torch.from_numpy(fitted.transform(x))).abs()
    assert ours.shape == (30, 9996)
    assert (diff > 1e-6).float().mean() <= TIE_SHARE and diff.max() <= 2 / (length - 8) + 1e-6


def test_every_aeon_bias_is_a_quantile_of_one_training_series() -> None:
    x = panel(15, 3, 40, seed=3, dyadic=True)
    theirs = from_aeon(aeon_fit(x, 1000), 3)
    shape = (len(theirs.dilations), mr.N_KERNELS)
    xs = torch.from_numpy(x)
    dil, counts = list(theirs.dilations), list(theirs.features_per_dilation)
    # [N, n_features]: each pair's biases as if every pair had picked series i
    each = torch.stack([mr.fit_biases(xs, dil, counts, theirs.channels, torch.full(shape, i)) for i in range(15)])
    sizes = [c for c in counts for _ in range(mr.N_KERNELS)]
    for aeons, candidates in zip(theirs.biases.split(sizes), each.split(sizes, dim=1), strict=True):
        assert (candidates == aeons).all(1).any()
