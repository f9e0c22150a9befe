"""An AnalysisResult as rich tables for the terminal (the CLI prints them; the library never does)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from tunelab.analysis.impact import SINGLE_NOTE
from tunelab.analysis.result import AnalysisResult

__all__ = ["renderables", "short_names"]

MAX_ROWS = 10


def _new_table(title: str, **kw: Any) -> Table:
    """Tables that stay readable at 80 columns: a rule under the header instead of a grid (two
    characters less per column), no padding at the edges."""
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, **kw)


def short_names(params: list[str]) -> dict[str, str]:
    """Each dotted parameter by its last part (``train.lr`` -> ``lr``) where that is unambiguous;
    the full names are in the importance table, report.html and analysis/*.csv."""
    last = [p.rsplit(".", 1)[-1] for p in params]
    return {p: (s if last.count(s) == 1 else p) for p, s in zip(params, last, strict=True)}


def renderables(result: AnalysisResult) -> list[RenderableType]:
    """Summary, top-k, importance, impact, overfitting, pruning, families (and Pareto front)."""
    out: list[RenderableType] = [_summary(result)]
    out += [Text(line) for line in result.reference]
    if result.training.note:
        out.append(Text(result.training.note, style="yellow"))
    out += [Text(m, style="yellow") for m in result.messages]
    if len(result.top):
        out.append(_top(result))
    if result.importance.values:
        out.append(_importance(result))
    if result.impact:
        out.append(_impact(result))
    if result.overfitting.stats:
        out.append(_overfitting(result))
    out.append(_training(result))
    if len(result.families):
        out.append(_families(result.families, result.table.objective_label()))
    if result.pareto is not None and len(result.pareto):
        out.append(_frame(result.pareto, "Pareto front", params=result.table.params))
    if result.out_dir is not None and result.files:
        report = result.out_dir / "report.html"
        out.append(Text(f"report: {report}" if report in result.files else f"written to {result.out_dir}"))
    return out


def _summary(r: AnalysisResult) -> RenderableType:
    s = r.summary
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold", no_wrap=True)
    t.add_column(overflow="fold")  # a long storage URL wraps whole rather than ending in "…"
    objective = ", ".join(f"{o} ({d})" for o, d in zip(s.objectives, s.directions, strict=True))
    planned = f" of {s.n_trials_planned} planned" if s.n_trials_planned else ""
    counts = ", ".join(f"{n} {k.lower()}" for k, n in s.counts.items() if n) or "none"
    t.add_row("study", f"{s.name}  (phase {s.phase})")
    t.add_row("storage", s.storage or "-")
    t.add_row("objective", objective)
    t.add_row("trials", f"{sum(s.counts.values())}{planned}: {counts}")
    if len(s.best) == 1:
        b = s.best[0]
        values = ", ".join(f"{k}={_f(v)}" for k, v in b["values"].items())
        t.add_row("best", f"trial #{b['number']} ({b['model']}): {values}")
        t.add_row("", ", ".join(f"{k}={_f(v)}" for k, v in b["params"].items()))
    elif s.best:
        t.add_row("best", f"{len(s.best)} Pareto-optimal trials (table below)")
    return t


def _top(r: AnalysisResult) -> Table:
    top = r.top
    fixed = [
        c for c in top.columns if c not in r.table.params and c not in ("epochs", "max_epochs", "best_epoch", "seconds")
    ]
    t = _new_table(f"top {len(top)} trials")
    for c in [*fixed, "epochs", "params"]:
        # params wrap between name=value pairs, never inside one
        t.add_column(c, justify="left" if c in ("model", "params") else "right", no_wrap=c != "params")
    names = short_names(r.table.params)
    for _, row in top.iterrows():
        epochs = f"{_f(row['epochs'])}/{_f(row['max_epochs'])}" if not _nan(row["max_epochs"]) else _f(row["epochs"])
        params = "  ".join(f"{names[p]}={_f(row[p])}" for p in r.table.params if not _nan(row[p]))
        t.add_row(*(_f(row[c]) for c in fixed), epochs, params)
    return t


def _importance(r: AnalysisResult) -> Table:
    imp = r.importance
    t = _new_table(f"hyperparameter importance ({imp.evaluator})")
    t.add_column("param", no_wrap=True)
    objectives = list(imp.values)
    for o in objectives:
        t.add_column(o, justify="right")
    t.add_column("")
    first = imp.values[objectives[0]]
    for p in imp.ranked():
        t.add_row(p, *(f"{imp.values[o].get(p, 0.0):.3f}" for o in objectives), "█" * int(round(first[p] * 30)))
    for p, why in imp.skipped.items():
        t.add_row(Text(p, style="dim"), *("-" for _ in objectives), Text(why, style="dim"))
    return t


def _impact(r: AnalysisResult) -> RenderableType:
    t = _new_table(
        f"impact on {r.table.objective_label()} (full tables in report.html / analysis/impact.csv)",
        caption="best: the best value or bin, mean: its mean objective, worst: the worst group's mean, "
        "ρ: Spearman's rank correlation, n=1: groups of one trial",
        caption_justify="left",
    )
    for c in ("param", "kind", "best", "mean", "worst", "ρ", "groups", "n=1"):
        t.add_column(c, justify="left" if c in ("param", "kind", "best") else "right", no_wrap=c != "best")
    for i in r.impact:
        means = i.table["mean"].dropna()
        worst = (means.min() if r.table.maximize else means.max()) if len(means) else math.nan
        best_mean = i.table.loc[i.table["group"] == i.best, "mean"]
        rho = "-" if i.spearman is None else f"{i.spearman:+.2f}"
        t.add_row(
            i.param,
            "cat" if i.kind == "categorical" else "num",
            i.best or "-",
            _f(best_mean.iloc[0] if len(best_mean) else math.nan),
            _f(worst),
            rho,
            str(len(i.table)),
            str(i.single) if i.single else "-",
        )
    if any(i.single for i in r.impact):
        return Group(t, Text(SINGLE_NOTE, style="dim"))
    return t


def _overfitting(r: AnalysisResult) -> RenderableType:
    o = r.overfitting
    s = o.stats
    t = _new_table(f"overfitting: train-val gap (threshold {o.threshold:g})")
    for c in ("trials", "mean", "median", "max", "over threshold"):
        t.add_column(c, justify="right")
    flagged = len(o.flagged)
    numbers = ", ".join(f"#{n}" for n in o.flagged["number"].head(MAX_ROWS)) + (" ..." if flagged > MAX_ROWS else "")
    t.add_row(str(int(s["count"])), _f(s["mean"]), _f(s["50%"]), _f(s["max"]), f"{flagged} {numbers}".strip())
    if not len(o.drivers):
        return t
    return Group(t, Text("moves the gap: " + "; ".join(o.drivers["detail"].head(3))))


def _training(r: AnalysisResult) -> Table:
    t = Table(title="early stopping and pruning", title_justify="left", show_header=False)
    t.add_column(style="bold")
    t.add_column(justify="right")
    for k, v in r.training.rows():
        t.add_row(k, v)
    for _, row in r.training.fail_reasons.head(5).iterrows():
        t.add_row(f"failed: {row['reason']}", str(row["count"]))
    return t


def _families(df: pd.DataFrame, objective: str) -> Table:
    """Model families in five columns (the full table is analysis/families.csv)."""
    t = _new_table("model families")
    for c in ("model", "trials (done/pruned/failed)", f"{objective} mean ± std", "range", "best"):
        t.add_column(c, justify="left" if c == "model" else "right")
    for _, row in df.iterrows():
        counts = f"{_f(row['trials'])} ({_f(row['complete'])}/{_f(row['pruned'])}/{_f(row['failed'])})"
        spread = "" if _nan(row["std"]) else f" ± {_g3(row['std'])}"
        span = "-" if _nan(row["min"]) else f"{_g3(row['min'])} – {_g3(row['max'])}"
        best = "-" if _nan(row["best_trial"]) else f"#{_f(row['best_trial'])}"
        t.add_row(str(row["model"]), counts, f"{_g3(row['mean'])}{spread}", span, best)
    return t


def _g3(v: Any) -> str:
    return "-" if _nan(v) else f"{float(v):.3g}"


def _frame(df: pd.DataFrame, title: str, params: list[str] | None = None) -> Table:
    t = _new_table(title)
    cols = [c for c in df.columns if c not in (params or [])]
    for c in cols:  # numbers and headers are never cut ("tria…", "0.68…")
        t.add_column(str(c), justify="left" if c == "model" else "right", no_wrap=True, min_width=len(str(c)))
    if params:
        t.add_column("params")
    names = short_names(params or [])
    for _, row in df.head(MAX_ROWS * 2).iterrows():
        cells = [_f(row[c]) for c in cols]
        if params:
            cells.append("  ".join(f"{names[p]}={_f(row[p])}" for p in params if not _nan(row[p])))
        t.add_row(*cells)
    return t


def _nan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _f(v: Any) -> str:
    if _nan(v):
        return "-"
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e9 else f"{v:.4g}"
    return str(v)
