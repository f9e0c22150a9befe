"""The comparison table: means, deltas and intervals per entry and metric, against the baseline."""

from __future__ import annotations

import math

import pytest

from tunelab.errors import UserError
from tunelab.experiments.comparison import Entry, Sample, compare_entries, default_metrics, higher_is_better

T_975_DF4 = 2.776445105


def _s(acc: float, loss: float, n_params: int = 100, spe: float = 1.0) -> Sample:
    return Sample("s", {"test_acc": acc, "val_loss": loss}, n_params=n_params, seconds_per_epoch=spe, epochs=5)


def _entries() -> list[Entry]:
    base = Entry("base", [_s(0.80, 0.50), _s(0.82, 0.40), _s(0.84, 0.45)])
    wide = Entry("wide", [_s(0.86, 0.30, 400, 2.0), _s(0.88, 0.35, 400, 2.0), _s(0.90, 0.40, 400, 2.0)])
    return [base, wide]


def test_means_deltas_and_intervals_match_a_hand_computation() -> None:
    comp = compare_entries(_entries())
    assert comp.baseline == "base" and comp.metrics == ["test_acc", "val_loss", "n_params", "seconds_per_epoch"]
    acc = comp.row("wide").stats["test_acc"]
    assert acc.summary.mean == pytest.approx(0.88) and acc.summary.std == pytest.approx(0.02)
    # both sides: std 0.02, n 3 → se = 0.02·sqrt(2/3), df = 4
    se = 0.02 * math.sqrt(2 / 3)
    assert acc.change is not None
    assert acc.change.delta == pytest.approx(0.06)
    assert (acc.change.low, acc.change.high) == pytest.approx((0.06 - T_975_DF4 * se, 0.06 + T_975_DF4 * se))
    assert acc.change.pct == pytest.approx(100 * 0.06 / 0.82)
    assert acc.better is True  # higher accuracy, interval above 0
    loss = comp.row("wide").stats["val_loss"]
    assert loss.change is not None and loss.change.delta == pytest.approx(0.35 - 0.45)
    assert loss.better is None  # the interval still spans 0
    params = comp.row("wide").stats["n_params"]
    assert params.change is not None and params.change.pct == pytest.approx(300.0) and params.better is False
    assert comp.row("base").stats["test_acc"].change is None


def test_baseline_by_name_and_tables() -> None:
    comp = compare_entries(_entries(), baseline="wide")
    assert comp.row("wide").baseline and not comp.row("base").baseline
    assert comp.row("base").stats["test_acc"].change.delta == pytest.approx(-0.06)  # type: ignore[union-attr]
    md = comp.to_markdown(["test_acc"])
    assert "| wide (baseline) | 3 | 0.88 ± 0.02 |" in md and "-6.8%" in md
    df = comp.to_frame()
    assert set(df["entry"]) == {"base", "wide"} and len(df) == 8
    cells = [c for c in comp.to_dict()["cells"] if c["entry"] == "wide"]
    assert cells[0]["delta"] is None and cells[0]["mean"] == pytest.approx(0.88)  # NaN → null in JSON
    with pytest.raises(UserError, match="baseline 'nope'"):
        compare_entries(_entries(), baseline="nope")


def test_default_metric_order_and_directions() -> None:
    s = Sample("x", {"train_loss": 1.0, "val_acc": 0.5, "test_f1": 0.4, "gap": 0.1})
    assert default_metrics([s]) == ["test_f1", "val_acc", "train_loss", "gap", "n_params", "seconds_per_epoch"]
    assert higher_is_better("test_acc") and higher_is_better("val_snr_gain_db")
    assert not higher_is_better("val_loss") and not higher_is_better("n_params")
