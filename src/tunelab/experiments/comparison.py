"""A comparison table: per entry (experiment, run, trial, study best, reference) and metric, the mean
± std over its samples (seeds) and the change against the baseline entry with a Welch interval.

``compare_entries`` only computes; ``to_frame``/``to_markdown``/``to_dict`` render.  Parameter
count and seconds per epoch are compared like metrics (lower is better).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tunelab.errors import UserError
from tunelab.experiments.stats import Interval, Summary, summarize, welch_interval

__all__ = [
    "Comparison",
    "Entry",
    "MetricStat",
    "Row",
    "Sample",
    "compare_entries",
    "default_metrics",
    "higher_is_better",
]

COST = ("n_params", "seconds_per_epoch")
_MAX = ("acc", "f1", "snr_db", "snr_gain_db", "auc", "r2")


def higher_is_better(metric: str) -> bool:
    """Accuracy, F1, SNR (and SNR gain), AUC and R² go up; losses, errors, sizes and times go down."""
    return metric.endswith(_MAX)


@dataclass
class Sample:
    """One finished training run: its final metrics, size, speed and (optionally) per-epoch history."""

    label: str
    metrics: dict[str, float]
    n_params: int | None = None
    seconds_per_epoch: float | None = None
    epochs: int | None = None
    seconds: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] | None = None
    source: str = ""

    def value(self, metric: str) -> float:
        if metric == "n_params":
            return float(self.n_params) if self.n_params is not None else math.nan
        if metric == "seconds_per_epoch":
            return float(self.seconds_per_epoch) if self.seconds_per_epoch is not None else math.nan
        v = self.metrics.get(metric)
        return float(v) if isinstance(v, int | float) else math.nan


@dataclass
class Entry:
    """A named group of samples (an experiment's seeds, or one run), optionally a reference."""

    name: str
    samples: list[Sample]
    reference: bool = False
    note: str = ""


@dataclass(frozen=True)
class MetricStat:
    """One cell: the entry's summary of a metric and its change against the baseline."""

    summary: Summary
    change: Interval | None  # None on the baseline row
    higher_is_better: bool

    @property
    def better(self) -> bool | None:
        """True/False when the interval says better/worse than the baseline; None when unclear."""
        if self.change is None or not self.change.excludes_zero:
            return None
        return (self.change.delta > 0) == self.higher_is_better


@dataclass
class Row:
    name: str
    n: int
    baseline: bool
    reference: bool
    stats: dict[str, MetricStat]
    epochs: float
    note: str = ""


@dataclass
class Comparison:
    """Rows in entry order; ``metrics`` are the compared metric names (cost columns last)."""

    rows: list[Row]
    metrics: list[str]
    baseline: str
    level: float

    def row(self, name: str) -> Row:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_frame(self) -> pd.DataFrame:
        """Long format: one line per entry and metric."""
        lines = []
        for r in self.rows:
            for m, s in r.stats.items():
                c = s.change
                lines.append(
                    {
                        "entry": r.name,
                        "baseline": r.baseline,
                        "reference": r.reference,
                        "metric": m,
                        "n": s.summary.n,
                        "mean": s.summary.mean,
                        "std": s.summary.std,
                        "delta": c.delta if c else math.nan,
                        "delta_pct": c.pct if c else math.nan,
                        "ci_low": c.low if c else math.nan,
                        "ci_high": c.high if c else math.nan,
                        "ci_pct_low": c.pct_low if c else math.nan,
                        "ci_pct_high": c.pct_high if c else math.nan,
                        "better": s.better,
                        "higher_is_better": s.higher_is_better,
                    }
                )
        return pd.DataFrame(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN as null)."""

        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        records = [{k: clean(v) for k, v in rec.items()} for rec in self.to_frame().to_dict("records")]
        return {
            "baseline": self.baseline,
            "level": self.level,
            "metrics": self.metrics,
            "entries": [
                {
                    "name": r.name,
                    "n": r.n,
                    "baseline": r.baseline,
                    "reference": r.reference,
                    "epochs": clean(r.epochs),
                    "note": r.note,
                }
                for r in self.rows
            ],
            "cells": records,
        }

    def cell(self, name: str, metric: str, sep: str = " ") -> str:
        """``mean ± std`` then ``+x.x% [lo, hi]`` (the change vs the baseline and its interval), joined by ``sep``."""
        s = self.row(name).stats.get(metric)
        if s is None or s.summary.n == 0:
            return "—"
        text = _num(s.summary.mean, metric)
        if s.summary.n > 1 and math.isfinite(s.summary.std) and not (metric == "n_params" and s.summary.std == 0):
            text += f" ± {_num(s.summary.std, metric, 2)}"
        c = s.change
        if c is None or not math.isfinite(c.delta):
            return text
        if math.isfinite(c.pct):
            change = f"{_pct(c.pct)}%"
            if math.isfinite(c.pct_low) and c.pct_low != c.pct_high:
                change += f" [{_pct(c.pct_low)}, {_pct(c.pct_high)}]"
        else:
            change = f"{c.delta:+.3g}"
            if math.isfinite(c.low) and c.low != c.high:
                change += f" [{c.low:+.3g}, {c.high:+.3g}]"
        return text + sep + change

    def to_markdown(self, metrics: Sequence[str] | None = None) -> str:
        """Entries as rows, metrics as columns; each cell mean ± std (change % [CI])."""
        cols = list(metrics or self.metrics)
        head = ["experiment", "n", *cols]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            name = r.name + (" (baseline)" if r.baseline else "") + (" (reference)" if r.reference else "")
            lines.append("| " + " | ".join([name, str(r.n), *(self.cell(r.name, m) for m in cols)]) + " |")
        lines.append("")
        lines.append(
            f"Cells: mean ± std over seeds (change vs {self.baseline} in % [{self.level:.0%} Welch t interval]); "
            "an interval that excludes 0 marks a difference the seeds support."
        )
        return "\n".join(lines) + "\n"


def _num(v: float, metric: str, digits: int = 4) -> str:
    if not math.isfinite(v):
        return "—"
    if metric == "n_params":
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def _pct(v: float) -> str:
    return f"{v:+.0f}" if abs(v) >= 100 else f"{v:+.1f}"


def default_metrics(samples: Sequence[Sample]) -> list[str]:
    """Every final metric any sample has: test_* first, then val_*, then the rest; cost columns last."""
    names: list[str] = []
    for s in samples:
        names += [k for k, v in s.metrics.items() if isinstance(v, int | float) and k not in names]
    order = {"test": 0, "val": 1}
    position = {k: i for i, k in enumerate(names)}
    names.sort(key=lambda k: (order.get(k.split("_", 1)[0], 2), position[k]))
    return [*names, *COST]


def compare_entries(
    entries: Sequence[Entry], baseline: str | None = None, metrics: Sequence[str] | None = None, level: float = 0.95
) -> Comparison:
    """Summarise each entry's metrics over its samples and compare each with ``baseline``.

    ``baseline`` defaults to the first entry; ``metrics`` to :func:`default_metrics` of the
    non-reference entries (cost columns are always added).
    """
    if not entries:
        raise UserError("nothing to compare: give at least one run, trial or study")
    names = [e.name for e in entries]
    base_name = baseline or names[0]
    if base_name not in names:
        raise UserError(
            f"baseline '{base_name}' is not one of the entries ({', '.join(names)}); set baseline: to one of them"
        )
    chosen = list(metrics) if metrics else default_metrics([s for e in entries if not e.reference for s in e.samples])
    chosen += [c for c in COST if c not in chosen]
    base = next(e for e in entries if e.name == base_name)
    rows = []
    for e in entries:
        stats = {}
        for m in chosen:
            values = [s.value(m) for s in e.samples]
            change = None if e.name == base_name else welch_interval(values, [s.value(m) for s in base.samples], level)
            stats[m] = MetricStat(summarize(values), change, higher_is_better(m))
        epochs = summarize([float(s.epochs) if s.epochs is not None else math.nan for s in e.samples]).mean
        rows.append(Row(e.name, len(e.samples), e.name == base_name, e.reference, stats, epochs, e.note))
    return Comparison(rows, chosen, base_name, level)
