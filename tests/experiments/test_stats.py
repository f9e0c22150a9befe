"""Mean ± std over seeds and the Welch interval, checked against hand computations."""

from __future__ import annotations

import math

import pytest

from tunelab.experiments.stats import summarize, welch_interval

T_975_DF4 = 2.776445105  # t table: 97.5% quantile, 4 degrees of freedom


def test_summary_is_mean_and_sample_std() -> None:
    s = summarize([0.80, 0.84, 0.88])
    assert s.mean == pytest.approx(0.84) and s.std == pytest.approx(0.04) and s.n == 3
    one = summarize([0.9])
    assert one.mean == 0.9 and math.isnan(one.std) and one.n == 1
    assert summarize([1.0, float("nan"), 3.0]).n == 2  # a missing value does not count


def test_welch_interval_matches_a_hand_computation() -> None:
    # a = 3, 4, 5 and b = 1, 2, 3: both variances 1, n = 3 → se = sqrt(2/3), df = 4
    iv = welch_interval([3, 4, 5], [1, 2, 3])
    se = math.sqrt(1 / 3 + 1 / 3)
    assert iv.delta == 2
    assert iv.df == pytest.approx(4.0)
    assert iv.low == pytest.approx(2 - T_975_DF4 * se, abs=1e-6)  # -0.2670
    assert iv.high == pytest.approx(2 + T_975_DF4 * se, abs=1e-6)  # 4.2670
    assert iv.pct == pytest.approx(100.0)  # +2 on a baseline mean of 2
    assert iv.pct_low == pytest.approx(100 * (2 - T_975_DF4 * se) / 2, abs=1e-4)
    assert iv.excludes_zero is False


def test_welch_degrees_of_freedom_with_unequal_variances_and_sizes() -> None:
    a, b = [10.0, 12.0, 14.0, 16.0], [9.0, 9.5]
    va, vb = 20 / 3, 0.125  # sample variances
    qa, qb = va / 4, vb / 2
    df = (qa + qb) ** 2 / (qa**2 / 3 + qb**2 / 1)
    iv = welch_interval(a, b, level=0.9)
    assert iv.df == pytest.approx(df)
    from scipy import stats

    half = stats.t.ppf(0.95, df) * math.sqrt(qa + qb)
    assert (iv.low, iv.high) == pytest.approx((13 - 9.25 - half, 13 - 9.25 + half))
    assert iv.excludes_zero is True


def test_one_seed_has_no_interval_and_identical_values_an_exact_one() -> None:
    iv = welch_interval([0.9], [0.8, 0.82])
    assert iv.delta == pytest.approx(0.09) and math.isnan(iv.low) and iv.excludes_zero is None
    exact = welch_interval([5, 5], [4, 4])
    assert exact.low == exact.high == 1 and exact.excludes_zero is True
    zero_base = welch_interval([1, 2], [0, 0])
    assert math.isnan(zero_base.pct)  # no percentage of a zero baseline
