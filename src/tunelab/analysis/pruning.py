"""Early stopping and pruning: how much of the epoch budget trials used, how many were pruned and when."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tunelab.analysis.frame import TrialTable
from tunelab.results.attrs import STOP
from tunelab.results.study import time_stopped_note

__all__ = ["TrainingStats", "training_stats"]


@dataclass
class TrainingStats:
    """Budget use of finished trials.

    ``pruned_share`` = pruned / (completed + pruned).  ``budget_used`` = epochs trained / epoch
    budget, summed over finished trials that record both; ``epochs_saved`` is the difference, over
    the trials that early stopping or the pruner ended (a trial the clock stopped saved nothing).
    ``time_stopped``: completed trials stopped by their time share or the study's timeout; they
    are not counted as early-stopped.
    """

    counts: dict[str, int]
    pruned_share: float | None = None
    pruned_at: pd.DataFrame = field(default_factory=pd.DataFrame)  # epoch, count
    pruned_epoch_mean: float | None = None
    pruned_epoch_median: float | None = None
    early_stopped: int = 0  # completed trials that early stopping ended before their epoch budget
    time_stopped: int = 0  # completed trials that the time budget ended
    with_budget: int = 0  # completed trials that recorded both epochs and a budget
    mean_epochs: float | None = None  # completed trials
    mean_best_epoch: float | None = None
    budget_used: float | None = None
    epochs_saved: int | None = None
    fail_reasons: pd.DataFrame = field(default_factory=pd.DataFrame)  # reason, count

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs for a two-column table."""
        fmt = _fmt
        c = self.counts
        out = [
            (
                "completed / pruned / failed / running",
                f"{c['COMPLETE']} / {c['PRUNED']} / {c['FAIL']} / {c['RUNNING']}",
            ),
            ("pruned share of finished trials", "-" if self.pruned_share is None else f"{self.pruned_share:.0%}"),
            ("pruned at epoch (mean / median)", f"{fmt(self.pruned_epoch_mean)} / {fmt(self.pruned_epoch_median)}"),
            ("early-stopped completed trials", f"{self.early_stopped} of {self.with_budget}"),
            ("stopped by the time budget", f"{self.time_stopped} of {c['COMPLETE']}"),
            ("epochs per completed trial (mean)", fmt(self.mean_epochs)),
            ("best epoch (mean)", fmt(self.mean_best_epoch)),
            ("epoch budget used", "-" if self.budget_used is None else f"{self.budget_used:.0%}"),
            ("epochs saved", "-" if self.epochs_saved is None else str(self.epochs_saved)),
        ]
        return out

    @property
    def note(self) -> str | None:
        """A sentence when the clock ended most completed trials (:func:`time_stopped_note`)."""
        return time_stopped_note(self.time_stopped, self.counts["COMPLETE"])


def training_stats(table: TrialTable) -> TrainingStats:
    """Early-stopping and pruning statistics of ``table``."""
    df = table.df
    counts = {s: int((df["state"] == s).sum()) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")}
    res = TrainingStats(counts=counts)
    finished = counts["COMPLETE"] + counts["PRUNED"]
    res.pruned_share = counts["PRUNED"] / finished if finished else None
    pruned = df[df["state"] == "PRUNED"]["pruned_epoch"].astype(float).dropna()
    res.pruned_at = (
        pruned.astype(int).value_counts().sort_index().rename_axis("epoch").reset_index(name="count")
        if len(pruned)
        else pd.DataFrame(columns=["epoch", "count"])
    )
    if len(pruned):
        res.pruned_epoch_mean, res.pruned_epoch_median = float(pruned.mean()), float(pruned.median())
    done = df[df["state"] == "COMPLETE"]
    epochs = done["epochs"].astype(float)
    both = done[np.isfinite(epochs) & np.isfinite(done["max_epochs"].astype(float))]
    res.with_budget = len(both)
    reason = both["stop_reason"]
    # a study written before trials recorded why they stopped: stopping short of the budget is early stopping
    early = reason.eq(STOP.EARLY) | (reason.isna() & (both["epochs"] < both["max_epochs"]))
    res.early_stopped = int(early.sum())
    res.time_stopped = int(done["stop_reason"].isin(STOP.TIME).sum())
    res.mean_epochs = _mean(epochs)
    res.mean_best_epoch = _mean(done["best_epoch"].astype(float))
    fin = df[df["state"].isin(["COMPLETE", "PRUNED"])]
    trained = fin["epochs"].astype(float).fillna(fin["pruned_epoch"].astype(float))
    budget = fin["max_epochs"].astype(float)
    ok = np.isfinite(trained) & np.isfinite(budget) & (budget > 0)
    if ok.any():
        res.budget_used = float(trained[ok].sum() / budget[ok].sum())
        saved = ok & ~fin["stop_reason"].isin(STOP.TIME)
        res.epochs_saved = int(round(budget[saved].sum() - trained[saved].sum()))
    reasons = df[df["state"] == "FAIL"]["reason"].fillna("unknown").astype(str)
    res.fail_reasons = reasons.value_counts().rename_axis("reason").reset_index(name="count")
    return res


def _mean(s: pd.Series) -> float | None:
    s = s.dropna()
    return float(s.mean()) if len(s) else None


def _fmt(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}"
