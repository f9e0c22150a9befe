"""report.html: one page (inline CSS, PNGs as base64) whose plotly.js is either inlined once or,
in a study directory, the one copy in ``plots/plotly.min.js`` that the plot pages share.

Opening it needs no network: no ``<script src=...>`` or ``<link href=...>`` points off the machine,
and a copied study directory keeps working.
"""

from __future__ import annotations

import base64
import html
import io
import math
import time
from typing import Any

import pandas as pd

from tunelab.analysis.impact import SINGLE_NOTE
from tunelab.analysis.plots import Plot
from tunelab.analysis.result import AnalysisResult

__all__ = ["SECTIONS", "render_report"]

# (id, heading); every report has these sections, with a plain sentence where there is no data
SECTIONS = (
    ("summary", "Summary"),
    ("top-k", "Top trials"),
    ("importance", "Hyperparameter importance"),
    ("impact", "Impact of each hyperparameter"),
    ("overfitting", "Overfitting (train-val gap)"),
    ("training", "Early stopping and pruning"),
    ("families", "Model families"),
    ("pareto", "Pareto front"),
    ("plots", "Plots"),
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:1rem 2rem;color:#222}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
nav a{margin-right:.8rem}.note{background:#fff6d6;border-left:4px solid #e0b400;padding:.5rem .8rem;margin:.5rem 0}
table.t{border-collapse:collapse;font-size:.85rem;margin:.5rem 0;display:block;overflow-x:auto}
table.t th,table.t td{border:1px solid #ddd;padding:.2rem .5rem;text-align:right;white-space:nowrap}
table.t th{background:#f3f3f3}table.t td:first-child{text-align:left}
dl.kv{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}dl.kv dt{font-weight:600}dl.kv dd{margin:0}
.muted{color:#777}.plot{margin:1rem 0;max-width:100%;overflow-x:auto}details{margin:.4rem 0}img{max-width:100%}
.plot .plotly-graph-div{max-width:100%}
"""


def render_report(result: AnalysisResult, plots: list[Plot] | None = None, *, plotly_js: str | None = None) -> str:
    """The whole report as one HTML string.

    ``plotly_js``: a path relative to the report (``plots/plotly.min.js``) to load plotly.js from
    instead of inlining its 4.8 MB, so a study directory carries one copy; None inlines it once.
    """
    s = result.summary
    body = [f"<h1>tunelab study report: {_e(s.name)}</h1>",
            f"<p class='muted'>phase {_e(s.phase)} · generated {time.strftime('%Y-%m-%d %H:%M:%S')}</p>",
            "<nav>" + "".join(f"<a href='#{i}'>{_e(h)}</a>" for i, h in SECTIONS) + "</nav>"]  # fmt: skip
    body += [f"<p class='note'><b>{_e(m)}</b></p>" for m in result.reference]
    if result.training.note:
        body.append(f"<p class='note'>{_e(result.training.note)}.</p>")
    body += [f"<p class='note'>{_e(m)}</p>" for m in result.messages]
    parts = {
        "summary": _summary(result),
        "top-k": _table(result.top, "no completed trials yet."),
        "importance": _importance(result),
        "impact": _impact(result),
        "overfitting": _overfitting(result),
        "training": _training(result),
        "families": _table(result.families, "no trials yet."),
        "pareto": _pareto(result),
        "plots": _plots(plots, plotly_js),
    }
    for sid, heading in SECTIONS:
        body.append(f"<section id='{sid}'><h2>{_e(heading)}</h2>{parts[sid]}</section>")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>tunelab report: {_e(s.name)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


def _summary(r: AnalysisResult) -> str:
    s = r.summary
    objectives = ", ".join(f"{o} ({d})" for o, d in zip(s.objectives, s.directions, strict=True))
    counts = ", ".join(f"{n} {k.lower()}" for k, n in s.counts.items() if n) or "none"
    planned = f" of {s.n_trials_planned} planned" if s.n_trials_planned else ""
    items = [("study", s.name), ("storage", s.storage), ("phase", s.phase), ("objectives", objectives),
             ("trials", f"{sum(s.counts.values())}{planned}: {counts}"), ("started", s.started or "-"),
             ("last completed", s.last_completed or "-")]  # fmt: skip
    out = "<dl class='kv'>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items) + "</dl>"
    if s.best:
        label = "Best trial" if len(s.best) == 1 else f"Pareto-optimal trials ({len(s.best)})"
        rows = [{"number": b["number"], "model": b["model"], **b["values"], **b["params"]} for b in s.best]
        out += f"<h3>{label}</h3>" + _table(pd.DataFrame(rows), "")
    return out


def _importance(r: AnalysisResult) -> str:
    imp = r.importance
    if not imp.values:
        return _para(imp.message or "importance not available.")
    frame = imp.frame().pivot(index="param", columns="objective", values="importance")
    first = next(iter(imp.values))
    frame = frame.sort_values(first, ascending=False).reset_index()
    out = f"<p class='muted'>evaluator: {_e(imp.evaluator)}; shares sum to 1 per objective.</p>" + _table(frame, "")
    if imp.skipped:
        out += "<p class='muted'>left out: " + "; ".join(f"{_e(p)}: {_e(w)}" for p, w in imp.skipped.items()) + "</p>"
    if imp.message:
        out += _para(imp.message)
    return out


def _impact(r: AnalysisResult) -> str:
    if not r.impact:
        return _para("no completed trials with sampled parameters yet.")
    label = r.table.objective_label()
    blocks = [
        f"<p class='muted'>objective: {_e(label)}; numeric parameters by value or quantile bin, with Spearman's rank correlation.</p>"
    ]
    if any(i.single for i in r.impact):
        blocks.append(f"<p class='note'>{_e(SINGLE_NOTE)}.</p>")
    for i in r.impact:
        corr = "" if i.spearman is None else f" · Spearman ρ = {i.spearman:+.3f} (p = {i.p_value:.3g})"
        best = f" · best: {_e(i.best)}" if i.best else ""
        best += f" · {i.single} group(s) of one trial" if i.single else ""
        blocks.append(
            f"<details open><summary><b>{_e(i.param)}</b> ({i.kind}, {i.n} trials){_e(corr)}{best}</summary>{_table(i.table, '')}</details>"
        )
    return "".join(blocks)


def _overfitting(r: AnalysisResult) -> str:
    o = r.overfitting
    if not o.stats:
        return _para(o.message or "no gap recorded.")
    stats = pd.DataFrame([o.stats])
    out = f"<p class='muted'>gap = val_loss − train_loss at the best epoch; threshold {o.threshold:g}.</p>" + _table(
        stats, ""
    )
    out += "<h3>What moves the gap</h3>" + _table(o.drivers, "too few trials to tell.")
    n = len(o.flagged)
    out += f"<h3>Trials over the threshold ({n})</h3>" + _table(o.flagged, f"no trial's gap exceeds {o.threshold:g}.")
    return out


def _training(r: AnalysisResult) -> str:
    t = r.training
    out = "<dl class='kv'>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in t.rows()) + "</dl>"
    if len(t.pruned_at):
        out += "<h3>Pruned at epoch</h3>" + _table(t.pruned_at, "")
    if len(t.fail_reasons):
        out += "<h3>Failures</h3>" + _table(t.fail_reasons, "")
    return out


def _pareto(r: AnalysisResult) -> str:
    if r.pareto is None:
        return _para("single-objective study: no Pareto front.")
    return _table(r.pareto, "no completed trials yet.")


def _plots(plots: list[Plot] | None, plotly_js: str | None = None) -> str:
    if not plots:
        return _para("plots were not rendered (--no-plots).")
    out: list[str] = []
    js_done = plotly_js is not None
    if plotly_js is not None and any(p.plotly is not None and not p.skipped for p in plots):
        out.append(f"<script src='{_e(plotly_js)}' charset='utf-8'></script>")
    for p in plots:
        if p.skipped:
            out.append(f"<p class='muted'>{_e(p.title)}: skipped ({_e(p.skipped)}).</p>")
        elif p.plotly is not None:
            # plotly.js goes inline once (unless loaded from plotly_js), with the first figure; the others reuse it
            div = p.plotly.to_html(
                full_html=False, include_plotlyjs=not js_done, default_width="100%", config={"responsive": True}
            )
            js_done = True
            out.append(f"<div class='plot'><h3>{_e(p.title)}</h3>{div}</div>")
        elif p.figure is not None:
            out.append(
                f"<div class='plot'><h3>{_e(p.title)}</h3><img alt='{_e(p.title)}' src='data:image/png;base64,{_png64(p.figure)}'></div>"
            )
    return "".join(out)


def _png64(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return base64.b64encode(buf.getvalue()).decode()


def _table(df: pd.DataFrame | None, empty: str) -> str:
    if df is None or not len(df):
        return _para(empty) if empty else ""
    return df.to_html(index=False, na_rep="–", border=0, classes="t", float_format=_fmt, escape=True)


def _fmt(v: float) -> str:
    return "–" if math.isnan(v) else f"{v:.4g}"


def _para(text: str) -> str:
    return f"<p>{_e(text)}</p>"


def _e(v: Any) -> str:
    return html.escape(str(v))
