"""What each hyperparameter did to the objective.

Categorical parameters: mean/std/count of the objective per value.  Numeric parameters: the
objective per value when there are few distinct values (hidden sizes, layer counts), otherwise per
quantile bin, plus Spearman's rank correlation (monotone effect, robust to log-scaled ranges).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from tunelab.analysis.frame import CATEGORICAL, TrialTable

__all__ = ["MAX_VALUES", "SINGLE_NOTE", "ParamImpact", "correlation_ratio", "group_stats", "impact", "spearman"]

SINGLE_NOTE = (
    "groups with count 1 hold one trial: their mean is noise, not evidence (best is chosen among groups of 2+)"
)
MAX_VALUES = 8  # up to this many distinct, repeated numeric values: one row per value instead of quantile bins


@dataclass
class ParamImpact:
    """The objective broken down by one parameter's values (or bins)."""

    param: str
    kind: str  # "categorical" | "numeric"
    n: int  # completed trials where the parameter was sampled
    table: pd.DataFrame  # columns: group, mean, std, count, min, max (best group first for categoricals)
    spearman: float | None = None  # numeric only: rank correlation with the objective
    p_value: float | None = None
    best: str | None = None  # the group with the best mean objective (over groups of 2+ trials where there are any)
    single: int = 0  # groups of one trial: their mean is one draw, noise rather than evidence


def impact(table: TrialTable, bins: int = 4, objective: str | None = None) -> list[ParamImpact]:
    """One :class:`ParamImpact` per parameter, over completed trials, for ``objective`` (column; first by default)."""
    col = objective or table.primary
    done = table.complete
    out = []
    for p in table.params:
        sub = done[[p, col]].dropna()
        if not len(sub):
            continue
        x, y = sub[p], sub[col].astype(float)
        kind = table.kinds[p]
        if kind == CATEGORICAL:
            groups = group_stats(x.astype(str), y)
            groups = groups.sort_values("mean", ascending=not table.maximize, kind="stable").reset_index(drop=True)
            rho = pval = None
        else:
            xf = x.astype(float)
            distinct = xf.nunique()
            if distinct <= bins or (
                distinct <= MAX_VALUES and distinct * 2 <= len(xf)
            ):  # few or repeated values: a row each
                groups = group_stats(xf, y).sort_values("key").reset_index(drop=True)
                groups["group"] = [_fmt(v) for v in groups["key"]]
            else:
                labels = quantile_bins(xf, bins)
                groups = group_stats(labels, y)
                groups = groups.sort_values(
                    "key", key=lambda s: s.map(lambda lab: float(lab.cat_lo)), kind="stable"
                ).reset_index(drop=True)
                groups["group"] = [lab.text for lab in groups["key"]]
            rho, pval = spearman(xf.to_numpy(), y.to_numpy())
        ok = groups.dropna(subset=["mean"])
        if (ok["count"] >= 2).any():  # a lucky single trial is no evidence for its value
            ok = ok[ok["count"] >= 2]
        best = None
        if len(ok):
            best = str(ok.loc[ok["mean"].idxmax() if table.maximize else ok["mean"].idxmin(), "group"])
        out.append(
            ParamImpact(
                p,
                kind,
                len(sub),
                groups[["group", "mean", "std", "count", "min", "max"]],
                rho,
                pval,
                best,
                single=int((groups["count"] == 1).sum()),
            )  # fmt: skip
        )
    return out


def group_stats(keys: pd.Series, y: pd.Series) -> pd.DataFrame:
    """mean/std/count/min/max of ``y`` per distinct key (std NaN for a single trial)."""
    g = pd.DataFrame({"key": keys.to_numpy(), "y": y.to_numpy(float)}).groupby("key", sort=False)["y"]
    res = g.agg(["mean", "std", "count", "min", "max"]).reset_index()
    res["group"] = res["key"].astype(str)
    res["count"] = res["count"].astype(int)
    return res


@dataclass(frozen=True)
class _Bin:
    cat_lo: float
    text: str

    def __str__(self) -> str:
        return self.text


def quantile_bins(x: pd.Series, bins: int) -> pd.Series:
    """Label each value with its quantile bin, e.g. ``[0.0001, 0.00032]`` (edges to 3 significant digits)."""
    codes, edges = pd.qcut(x, q=bins, labels=False, retbins=True, duplicates="drop")
    labels = [_Bin(float(edges[i]), f"[{_fmt(edges[i])}, {_fmt(edges[i + 1])}]") for i in range(len(edges) - 1)]
    return pd.Series([labels[int(c)] for c in codes], index=x.index)


def spearman(x: np.ndarray, y: np.ndarray) -> tuple[float | None, float | None]:
    """Spearman's rho and its p-value; (None, None) with fewer than 3 points or a constant input."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, None
    res = stats.spearmanr(x, y)
    rho, p = float(res.statistic), float(res.pvalue)
    return (None, None) if math.isnan(rho) else (rho, p)


def correlation_ratio(keys: pd.Series, y: pd.Series) -> float | None:
    """Eta: how much of ``y``'s spread lies between groups (0 = none, 1 = all); a categorical
    counterpart to |rho| on the same 0..1 scale."""
    yv = y.to_numpy(float)
    if len(yv) < 3 or np.ptp(yv) == 0:
        return None
    total = ((yv - yv.mean()) ** 2).sum()
    frame = pd.DataFrame({"k": keys.astype(str).to_numpy(), "y": yv})
    between = frame.groupby("k")["y"].agg(lambda s: len(s) * (s.mean() - yv.mean()) ** 2).sum()
    return float(math.sqrt(between / total))


def _fmt(v: float) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:.3g}"
