"""Summaries over seeds and the change against a baseline with a Welch t confidence interval.

Why Welch: experiments may have different numbers of finished seeds and different spreads
(a bidirectional GRU varies less than a shallow one); Welch's t interval needs neither equal
sizes nor equal variances and, unlike a bootstrap, is exact to compute from 2-5 seeds.

For a metric with values ``a`` (experiment) and ``b`` (baseline):

    delta = mean(a) - mean(b)
    se    = sqrt(var(a)/n_a + var(b)/n_b)                     (sample variances, ddof = 1)
    df    = se^4 / ((var(a)/n_a)^2/(n_a-1) + (var(b)/n_b)^2/(n_b-1))   (Welch-Satterthwaite)
    CI    = delta ± t_{(1+level)/2, df} · se

The change in percent divides delta and its interval by |mean(b)| (the baseline mean taken as
fixed).  With fewer than two values on either side there is no interval (NaN): one seed cannot
tell a real difference from noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

__all__ = ["Interval", "Summary", "summarize", "welch_interval"]


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (NaN for one value) and count of finite values."""

    mean: float
    std: float
    n: int


def summarize(values: Sequence[float]) -> Summary:
    """Mean ± std (ddof=1) over the finite values."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if v.size == 0:
        return Summary(math.nan, math.nan, 0)
    return Summary(float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan, int(v.size))


@dataclass(frozen=True)
class Interval:
    """``delta = mean(a) - mean(b)`` with its Welch confidence interval, also in % of |mean(b)|."""

    delta: float
    low: float
    high: float
    df: float
    level: float
    pct: float
    pct_low: float
    pct_high: float

    @property
    def excludes_zero(self) -> bool | None:
        """True when the interval lies entirely on one side of 0 (a difference the seeds support)."""
        if math.isnan(self.low) or math.isnan(self.high):
            return None
        return self.low > 0 or self.high < 0


def welch_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Interval:
    """Welch t interval for ``mean(a) - mean(b)`` at confidence ``level``."""
    sa, sb = summarize(a), summarize(b)
    delta = sa.mean - sb.mean
    low = high = df = math.nan
    if sa.n >= 2 and sb.n >= 2:
        qa, qb = sa.std**2 / sa.n, sb.std**2 / sb.n
        se2 = qa + qb
        if se2 == 0:  # identical values on both sides: the difference is exact
            low = high = delta
            df = math.inf
        else:
            df = se2**2 / (qa**2 / (sa.n - 1) + qb**2 / (sb.n - 1))
            half = float(sps.t.ppf(0.5 + level / 2, df)) * math.sqrt(se2)
            low, high = delta - half, delta + half
    scale = abs(sb.mean)
    if scale > 0 and math.isfinite(scale):
        pct, pct_low, pct_high = (100 * x / scale for x in (delta, low, high))
    else:
        pct = pct_low = pct_high = math.nan
    return Interval(delta, low, high, df, level, pct, pct_low, pct_high)
