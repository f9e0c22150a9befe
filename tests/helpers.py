"""Small shared builders for tests: tiny, seeded, fast."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from tunelab.data.base import DataMeta, SequenceData


@dataclass
class TinySplits:
    """Duck-typed stand-in for tunelab.data.Splits."""

    train: SequenceData
    val: SequenceData
    test: SequenceData
    meta: DataMeta


def tiny_classification(n: int, seed: int, t: int = 16, channels: int = 3, classes: int = 3) -> SequenceData:
    """Variable-length sequences whose first channel carries the class."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    lengths = torch.randint(4, t + 1, (n,), generator=g)
    x = torch.randn(n, t, channels, generator=g) * 0.5
    x[:, :, 0] += y[:, None].float() - 1
    x = x * (torch.arange(t)[None, :, None] < lengths[:, None, None])
    meta = DataMeta("tiny", channels, t, n_classes=classes, class_names=tuple(map(str, range(classes))))
    return SequenceData(x, lengths, y, meta)


def tiny_splits(n: int = 96, seed: int = 0, **kw: int) -> TinySplits:
    parts = [tiny_classification(n if i == 0 else n // 3, seed + i, **kw) for i in range(3)]
    return TinySplits(*parts, meta=parts[0].meta)


@pytest.fixture(autouse=True)
def no_study_reference(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Studies fit no MiniRocket reference (aeon's numba kernels take seconds to load) except in
    tests marked ``reference``; a conftest imports this fixture to switch it on for its folder."""
    if request.node.get_closest_marker("reference") is None:
        from tunelab.baselines import reference

        monkeypatch.setattr(reference, "ENABLED", False)
