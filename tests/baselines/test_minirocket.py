"""The MiniRocket reference: same splits, trainer metric names, and a clear hint without aeon."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import tunelab  # noqa: F401
from tests.helpers import TinySplits, tiny_splits
from tunelab.baselines import HINT, fit_minirocket, reference_row
from tunelab.baselines.minirocket import to_panel
from tunelab.config import load_config
from tunelab.data.base import DataMeta, SequenceData
from tunelab.errors import UserError


def test_to_panel_zero_pads_every_row_to_one_length() -> None:
    x = torch.ones(2, 5, 3)
    panel = to_panel(x, torch.tensor([5, 2]), 9)
    assert panel.shape == (2, 3, 9) and panel.dtype == np.float64
    assert panel[0, :, :5].sum() == 15 and panel[0, :, 5:].sum() == 0
    assert panel[1, :, :2].sum() == 6 and panel[1, :, 2:].sum() == 0  # steps past the length are zeroed


def test_reference_row_has_the_trainer_metric_names() -> None:
    pytest.importorskip("aeon")
    row = reference_row(load_config(None, ["seed=3"]), data=tiny_splits(n=60), n_kernels=500)
    assert row["status"] == "ok" and row["name"] == "MiniRocket"
    assert {"val_acc", "val_f1", "test_acc", "test_f1", "n_params", "fit_seconds", "seconds"} <= set(row)
    assert 0.6 < row["test_acc"] <= 1  # the first channel carries the class: easy for MiniRocket
    assert row["fit_seconds"] > 0 and row["padded_length"] == 16


def test_regression_reports_mse_and_mae() -> None:
    pytest.importorskip("aeon")
    g = torch.Generator().manual_seed(0)

    def part(n: int) -> SequenceData:
        x = torch.randn(n, 12, 2, generator=g)
        lengths = torch.randint(5, 13, (n,), generator=g)
        x = x * (torch.arange(12)[None, :, None] < lengths[:, None, None])
        y = torch.stack([x[:, :, 0].sum(1), x[:, :, 1].abs().sum(1)], 1)  # two targets
        return SequenceData(x, lengths, y, DataMeta("reg", 2, 12, task="regression", n_outputs=2))

    parts = [part(40), part(12), part(12)]
    result = fit_minirocket(TinySplits(*parts, meta=parts[0].meta), n_kernels=500)
    assert {"val_mse", "val_mae", "test_mse", "test_mae"} == set(result.metrics)
    assert result.n_params == result.n_features * 2 + 2  # two outputs' coefficients and intercepts


def test_without_aeon_the_row_and_the_error_say_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "aeon", None)  # import aeon now fails, as if not installed
    row = reference_row(load_config(None, []), data=tiny_splits(n=30))
    assert row["status"] == "missing" and HINT in row["hint"] and "tunelab[baselines]" in row["hint"]
    with pytest.raises(UserError, match=r"pip install 'tunelab\[baselines\]'"):
        fit_minirocket(tiny_splits(n=30))


def test_seq2seq_data_has_no_reference() -> None:
    pytest.importorskip("aeon")
    meta = DataMeta("den", 1, 10, task="seq2seq", n_outputs=1)
    d = SequenceData(torch.randn(4, 10, 1), torch.full((4,), 10), torch.randn(4, 10, 1), meta)
    row = reference_row(load_config(None, []), data=TinySplits(d, d, d, meta))
    assert row["status"] == "not_applicable"
