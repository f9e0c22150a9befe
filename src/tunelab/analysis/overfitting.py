"""Overfitting: the train-val gap (val_loss - train_loss at the best epoch) across completed trials,
the parameters that move it, and the trials whose gap exceeds a threshold."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tunelab.analysis.frame import CATEGORICAL, TrialTable
from tunelab.analysis.impact import correlation_ratio, spearman

__all__ = ["DEFAULT_GAP_THRESHOLD", "Overfitting", "overfitting"]

DEFAULT_GAP_THRESHOLD = 0.05  # seed 002's rule of thumb: "train-val gap > 0.05 (overfitting)"


@dataclass
class Overfitting:
    """Gap distribution, its drivers and the flagged trials."""

    threshold: float
    stats: dict[str, float] = field(default_factory=dict)  # count, mean, std, min, 25%, 50%, 75%, max
    drivers: pd.DataFrame = field(default_factory=pd.DataFrame)  # param, kind, strength, rho, p_value, detail, n
    flagged: pd.DataFrame = field(default_factory=pd.DataFrame)  # trials with gap > threshold, largest gap first
    message: str | None = None


def overfitting(table: TrialTable, threshold: float | None = None) -> Overfitting:
    """Analyse the gap of completed trials.  ``threshold`` defaults to :data:`DEFAULT_GAP_THRESHOLD`.

    Drivers: numeric parameters by Spearman's rho with the gap, categorical ones by the correlation
    ratio (eta) with the per-value mean gap; ``strength`` (|rho| or eta, 0..1) orders them.
    """
    thr = DEFAULT_GAP_THRESHOLD if threshold is None else float(threshold)
    done = table.complete
    with_gap = done[np.isfinite(done["gap"].astype(float))] if len(done) else done
    result = Overfitting(threshold=thr)
    if not len(with_gap):
        result.message = (
            "no completed trial recorded a train/val gap." if len(done) else "no completed trials: no gap to analyse."
        )
        result.flagged = pd.DataFrame(columns=_FLAG_COLS)
        result.drivers = pd.DataFrame(columns=_DRIVER_COLS)
        return result
    gap = with_gap["gap"].astype(float)
    desc = gap.describe()
    result.stats = {k: (float(v) if not math.isnan(v) else math.nan) for k, v in desc.items()}
    flagged = with_gap[gap > thr].sort_values("gap", ascending=False, kind="stable")
    result.flagged = flagged[[*_FLAG_COLS[:-1], table.primary, *table.params]].rename(columns={table.primary: "value"})
    result.drivers = _drivers(with_gap, table)
    if len(with_gap) < 3:
        result.message = f"only {len(with_gap)} trial(s) with a gap: too few to say which parameters move it."
    return result


_FLAG_COLS = ["number", "gap", "train_loss", "val_loss", "epochs", "best_epoch", "model", "value"]
_DRIVER_COLS = ["param", "kind", "strength", "rho", "p_value", "detail", "n"]


def _drivers(df: pd.DataFrame, table: TrialTable) -> pd.DataFrame:
    rows = []
    for p in table.params:
        sub = df[[p, "gap"]].dropna()
        if len(sub) < 3 or sub[p].nunique() < 2:
            continue
        gap = sub["gap"].astype(float)
        if table.kinds[p] == CATEGORICAL:
            eta = correlation_ratio(sub[p], gap)
            means = gap.groupby(sub[p].astype(str).to_numpy()).mean()
            top = means.idxmax()
            rows.append({"param": p, "kind": CATEGORICAL, "strength": eta, "rho": None, "p_value": None,
                         "detail": f"largest mean gap with {p}={top} ({means[top]:.3g})", "n": len(sub)})  # fmt: skip
        else:
            rho, pval = spearman(sub[p].astype(float).to_numpy(), gap.to_numpy())
            if rho is None:
                continue
            trend = "rises" if rho > 0 else "falls"
            rows.append({"param": p, "kind": "numeric", "strength": abs(rho), "rho": rho, "p_value": pval,
                         "detail": f"gap {trend} as {p} grows (rho={rho:+.2f})", "n": len(sub)})  # fmt: skip
    out = pd.DataFrame(rows, columns=_DRIVER_COLS)
    return out.sort_values("strength", ascending=False, na_position="last", kind="stable").reset_index(drop=True)
