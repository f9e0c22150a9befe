"""augment(): shapes, padding and lengths respected; no-op at zero strength; seeded."""

from __future__ import annotations

import pytest
import torch

from tunelab.config import AugmentConfig
from tunelab.data import augment
from tunelab.data.augment import time_mask, time_warp


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([12, 5, 1, 9])
    x = torch.randn(4, 12, 3, generator=g) * (torch.arange(12)[None, :, None] < lengths[:, None, None])
    return x, lengths


def pad_of(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return x[torch.arange(x.shape[1])[None, :] >= lengths[:, None]]


def test_zero_strengths_are_a_no_op(batch) -> None:
    x, lengths = batch
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert augment(x, lengths, AugmentConfig(), g) is x
    assert torch.equal(g.get_state(), state)  # no random numbers drawn


@pytest.mark.parametrize(
    "cfg",
    [
        AugmentConfig(jitter=0.1),
        AugmentConfig(scale=0.2),
        AugmentConfig(time_warp=0.5),
        AugmentConfig(time_mask=0.3),
        AugmentConfig(jitter=0.1, scale=0.2, time_warp=0.5, time_mask=0.3),
    ],
)
def test_shapes_padding_and_seed(batch, cfg: AugmentConfig) -> None:
    x, lengths = batch
    a = augment(x, lengths, cfg, torch.Generator().manual_seed(1))
    b = augment(x, lengths, cfg, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)
    assert not torch.equal(a, x)
    pad = pad_of(a, lengths)
    assert torch.equal(pad, torch.zeros_like(pad)) and not torch.signbit(pad).any()
    assert torch.isfinite(a).all()


def test_time_warp_keeps_ends_and_values_range(batch) -> None:
    x, lengths = batch
    w = time_warp(x, lengths, 0.8, torch.Generator().manual_seed(2))
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(w[i, 0], x[i, 0])
        torch.testing.assert_close(w[i, n - 1], x[i, n - 1])  # the warp keeps both ends
        lo, hi = x[i, :n].min(0).values, x[i, :n].max(0).values
        assert ((w[i, :n] >= lo - 1e-6) & (w[i, :n] <= hi + 1e-6)).all()  # interpolation, no overshoot
    near = time_warp(x, lengths, 1e-6, torch.Generator().manual_seed(2))
    torch.testing.assert_close(near, x, atol=1e-4, rtol=0)  # vanishing strength: identity


def test_time_mask_zeroes_one_span_of_the_requested_width(batch) -> None:
    x, lengths = batch
    m = time_mask(x, lengths, 0.5, torch.Generator().manual_seed(3))
    for i, n in enumerate(lengths.tolist()):
        zeroed = (m[i, :n] == 0).all(-1) & (x[i, :n] != 0).any(-1)
        idx = torch.nonzero(zeroed).flatten()
        assert len(idx) == round(0.5 * n)
        if len(idx):
            assert int(idx[-1] - idx[0]) == len(idx) - 1  # contiguous
