"""Plots: thin renderers over ``optuna.visualization`` (plotly, interactive HTML) and
``optuna.visualization.matplotlib`` (PNG), plus train/val loss curves read from the trials' metrics.jsonl.

``build_plots`` returns figures; ``tunelab.analysis.writers.write_plots`` writes them.  A plot
whose data is missing (no completed trial, fewer than two varying parameters, ...) is returned with
``skipped`` set to the reason instead of failing the analysis.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from tunelab.analysis.frame import TrialTable
from tunelab.analysis.importance import Importance

__all__ = ["PNG_NAMES", "Plot", "build_plots", "pyplot"]

log = logging.getLogger(__name__)

# seed 000's PNG names; the HTML files are named f"{phase}_{html_suffix}" (seed 001)
PNG_NAMES = {
    "history": "optimization_history.png",
    "importance": "param_importances.png",
    "parallel": "parallel_coordinate.png",
    "contour": "contour_plot.png",
    "slice": "slice_plot.png",
    "learning_curves": "learning_curves.png",
    "loss_curves": "loss_curves.png",
    "pareto": "pareto_front.png",
}
HTML_SUFFIX = {
    "history": "history.html",
    "importance": "param_importance.html",
    "parallel": "parallel.html",
    "contour": "contour.html",
    "slice": "slice.html",
    "learning_curves": "learning_curves.html",
    "loss_curves": "loss_curves.html",
    "pareto": "pareto_front.html",
}
TITLES = {
    "history": "Optimization history",
    "importance": "Hyperparameter importance",
    "parallel": "Parallel coordinates",
    "contour": "Contour of the two most important parameters",
    "slice": "Slice plots",
    "learning_curves": "Learning curves (objective per epoch)",
    "loss_curves": "Train / validation loss of the top trials",
    "pareto": "Pareto front",
}
MAX_PARAMS = 10  # parallel/slice plots beyond this many parameters are unreadable: keep the most important


@dataclass
class Plot:
    """One plot in both backends; a backend's figure is None when it was not requested or failed."""

    key: str
    title: str
    html_name: str
    png_name: str
    plotly: Any = None  # plotly.graph_objects.Figure
    figure: Any = None  # matplotlib.figure.Figure
    skipped: str | None = None


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, unless the caller already chose a backend (a notebook)."""
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def build_plots(
    study: optuna.Study,
    table: TrialTable,
    importance: Importance,
    *,
    backends: tuple[str, ...] = ("plotly", "matplotlib"),
    study_dir: Path | None = None,
    top_n_curves: int = 5,
) -> list[Plot]:
    """Every plot that applies to ``study``, in the requested backends."""
    phase = table.info.phase
    target, target_name = _target(table)
    ranked = [p for p in importance.ranked() if p not in importance.skipped] or _varying(table)
    n_done = len(table.complete)
    specs: dict[str, tuple[str | None, dict[str, Callable[[], Any]]]] = {}

    def need(ok: bool, why: str) -> str | None:
        return None if ok else why

    no_done = need(n_done >= 1, "no completed trials")
    specs["history"] = (no_done, _both("plot_optimization_history", study, target=target, target_name=target_name))
    # drawn from the computed shares: Optuna's plot would recompute them (slow for fANOVA) and
    # would rank PED-ANOVA by low values even for objectives we maximise
    specs["importance"] = (need(bool(importance.values), importance.message or "importance not available"),
                           {"plotly": lambda: _importance_plotly(importance), "matplotlib": lambda: _importance_mpl(importance)})  # fmt: skip
    few = ranked[:MAX_PARAMS]
    sampled = [p for p in few if p not in table.named]  # Optuna's own plots know sampled parameters only
    # the objective goes last (and colours the lines), the parameter names are tilted so they do not overlap
    specs["parallel"] = (no_done or need(bool(few), "no parameter varied"),
                         {"plotly": lambda: _parallel_plotly(table, few, target_name),
                          "matplotlib": lambda: _parallel_mpl(table, few, target_name)})  # fmt: skip
    two = [p for p in ranked if p not in table.named][:2]
    specs["contour"] = (need(n_done >= 2 and len(two) >= 2, "needs 2 completed trials and 2 varying parameters"),
                        _both("plot_contour", study, params=two, target=target, target_name=target_name))  # fmt: skip
    specs["slice"] = (no_done or need(bool(sampled), "no parameter varied"),
                      _both("plot_slice", study, params=sampled, target=target, target_name=target_name))  # fmt: skip
    has_curves = bool((table.df["n_intermediate"] > 0).any()) if len(table.df) else False
    specs["learning_curves"] = (
        need(has_curves, "no trial reported per-epoch values"),
        _labelled(
            _both("plot_intermediate_values", study), "epoch", f"{table.info.objectives[0]} (reported per epoch)"
        ),
    )
    curves = _loss_curves(table, study_dir, top_n_curves)
    specs["loss_curves"] = (need(bool(curves), "no metrics.jsonl found for the top trials"),
                            {"plotly": lambda: _loss_plotly(curves), "matplotlib": lambda: _loss_mpl(curves)})  # fmt: skip
    if table.info.multi_objective:
        n_obj = len(table.info.directions)
        specs["pareto"] = (no_done or need(n_obj in (2, 3), f"a Pareto plot shows 2 or 3 objectives, not {n_obj}"),
                           _both("plot_pareto_front", study, target_names=table.info.objectives))  # fmt: skip

    plots = []
    for key, (skip, makers) in specs.items():
        plot = Plot(key, TITLES[key], f"{phase}_{HTML_SUFFIX[key]}", PNG_NAMES[key], skipped=skip)
        if skip is None:
            for backend in backends:
                fig = _render(key, backend, makers[backend])
                setattr(plot, "plotly" if backend == "plotly" else "figure", fig)
            if plot.plotly is None and plot.figure is None:
                plot.skipped = "rendering failed (see the log)"
        plots.append(plot)
    return plots


def _target(table: TrialTable) -> tuple[Callable[[FrozenTrial], float] | None, str]:
    """Single-target plots of a multi-objective study show the first objective."""
    name = table.info.objectives[0]
    if table.info.multi_objective:
        return (lambda t: t.values[0]), name
    return None, name


def _varying(table: TrialTable) -> list[str]:
    done = table.complete
    return [p for p in table.params if done[p].nunique(dropna=True) >= 2] if len(done) else []


def _both(fn: str, study: optuna.Study, **kw: Any) -> dict[str, Callable[[], Any]]:
    kw = {k: v for k, v in kw.items() if not (k == "target" and v is None)}

    def plotly() -> Any:
        return getattr(optuna.visualization, fn)(study, **kw)

    def mpl() -> Any:
        pyplot()
        import optuna.visualization.matplotlib as vm

        axes = getattr(vm, fn)(study, **kw)
        first = axes.flat[0] if hasattr(axes, "flat") else axes  # slice/contour grids return arrays of Axes
        return first.figure  # no tight_layout: it pushes optuna's colorbars onto the plots

    return {"plotly": plotly, "matplotlib": mpl}


#: Above this many entries a PNG's legend (Optuna's "Trial N" per line) is dropped: it would be
#: taller than the figure; the interactive plot names each line on hover.
MAX_LEGEND = 12


def _labelled(makers: dict[str, Callable[[], Any]], xlabel: str, ylabel: str) -> dict[str, Callable[[], Any]]:
    """Optuna's figure with real axis titles instead of its generic "Step" / "Intermediate Value"."""

    def plotly() -> Any:
        fig = makers["plotly"]()
        fig.update_layout(xaxis_title=xlabel, yaxis_title=ylabel)
        return fig

    def mpl() -> Any:
        fig = makers["matplotlib"]()
        ax = fig.axes[0]
        ax.set(xlabel=xlabel, ylabel=ylabel)
        legend = ax.get_legend()
        if legend is not None and len(legend.get_texts()) > MAX_LEGEND:  # a list of trial numbers taller than the plot
            legend.remove()
        return fig

    return {"plotly": plotly, "matplotlib": mpl}


def _parallel_plotly(table: TrialTable, params: list[str], target_name: str) -> Any:
    """Parallel coordinates (plotly): the parameters, most important first, then the objective as the
    last axis; it also colours the lines.  Categorical axes show their choices, log axes log10."""
    import numpy as np
    import pandas as pd
    import plotly.graph_objects as go

    done = table.complete
    dims = []
    for p in params:
        raw = done[p]
        num = pd.to_numeric(raw, errors="coerce")
        if table.kinds.get(p) == "numeric" and num.notna().any():
            if table.log_scale.get(p):
                dims.append({"label": f"{p} (log10)", "values": np.log10(num.where(num > 0))})
            else:
                dims.append({"label": p, "values": num})
        else:
            cats = sorted({str(x) for x in raw.dropna()})
            codes = raw.map(lambda x, c=cats: c.index(str(x)) if pd.notna(x) else np.nan)
            dims.append({"label": p, "values": codes, "tickvals": list(range(len(cats))), "ticktext": cats})
    values = done[table.primary].astype(float)
    dims.append({"label": target_name, "values": values})
    line = {"color": values, "colorscale": "Viridis", "reversescale": not table.maximize, "showscale": True,
            "colorbar": {"title": {"text": target_name}}}  # fmt: skip
    fig = go.Figure(go.Parcoords(line=line, dimensions=dims, labelangle=-25))
    fig.update_layout(title=TITLES["parallel"], margin={"t": 140})
    return fig


def _parallel_mpl(table: TrialTable, params: list[str], target_name: str) -> Any:
    """Parallel coordinates: one axis per parameter (most important first), values scaled to [0, 1]
    per axis (log axes on a log scale), lines coloured by the objective, which is named on the
    colour bar rather than squeezed in as an axis."""
    import numpy as np
    import pandas as pd

    plt = pyplot()
    done = table.complete
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(params) + 2), 4.8))
    cols, ticks = [], []
    for p in params:
        raw = done[p]
        num = pd.to_numeric(raw, errors="coerce")
        if table.kinds.get(p) == "numeric" and num.notna().any():
            v = np.log10(num.where(num > 0)) if table.log_scale.get(p) else num
            lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
            lab = (f"{float(np.nanmin(num)):.3g}", f"{float(np.nanmax(num)):.3g}")
        else:
            cats = sorted({str(x) for x in raw.dropna()})
            v = raw.map(lambda x, c=cats: c.index(str(x)) if pd.notna(x) else np.nan).astype(float)
            lo, hi = 0.0, float(max(len(cats) - 1, 1))
            lab = (cats[0], cats[-1]) if cats else ("", "")
        cols.append(((v - lo) / (hi - lo)).to_numpy(dtype=float) if hi > lo else np.full(len(v), 0.5))
        ticks.append(lab)
    y = np.vstack(cols).T if cols else np.zeros((0, 0))
    values = done[table.primary].astype(float).to_numpy()
    cmap = plt.get_cmap("viridis" if table.maximize else "viridis_r")
    norm = plt.Normalize(float(values.min()), float(values.max())) if len(values) else plt.Normalize(0, 1)
    order = np.argsort(values if table.maximize else -values)  # best trials drawn last, on top
    x = np.arange(len(params))
    for i in order:
        ax.plot(x, y[i], color=cmap(norm(values[i])), alpha=0.7, lw=1.2)
    for k, (lo_lab, hi_lab) in enumerate(ticks):
        ax.axvline(k, color="#999", lw=0.8)
        ax.annotate(hi_lab, (k, 1.0), xytext=(0, 4), textcoords="offset points", ha="center", fontsize=7)
        ax.annotate(lo_lab, (k, 0.0), xytext=(0, -10), textcoords="offset points", ha="center", fontsize=7)
    ax.set_xticks(x, params, rotation=30, ha="right", fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlim(-0.3, len(params) - 0.7)
    ax.set_title(TITLES["parallel"], pad=14)  # above the axes' top values
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax)
    bar.set_label(target_name)
    fig.tight_layout()
    return fig


def _render(key: str, backend: str, make: Callable[[], Any]) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna's ExperimentalWarning on every matplotlib plot
            return make()
    except Exception as exc:  # a plot must never sink the analysis
        log.warning("%s plot (%s) failed: %s", key, backend, exc)
        return None


def _importance_rows(imp: Importance) -> tuple[list[str], dict[str, list[float]]]:
    """Parameters least-important first (so horizontal bars read top-down) and each objective's shares."""
    params = list(reversed(imp.ranked()))
    return params, {o: [scores.get(p, 0.0) for p in params] for o, scores in imp.values.items()}


def _importance_plotly(imp: Importance) -> Any:
    import plotly.graph_objects as go

    params, shares = _importance_rows(imp)
    fig = go.Figure(
        [go.Bar(x=v, y=params, orientation="h", name=o, text=[f"{x:.2f}" for x in v]) for o, v in shares.items()]
    )
    fig.update_layout(title=f"{TITLES['importance']} ({imp.evaluator})", xaxis_title="importance", barmode="group",
                      height=max(300, 60 + 28 * len(params) * len(shares)))  # fmt: skip
    return fig


def _importance_mpl(imp: Importance) -> Any:
    import numpy as np

    plt = pyplot()
    params, shares = _importance_rows(imp)
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.45 * len(params) * len(shares) + 1)))
    height = 0.8 / len(shares)
    for k, (o, v) in enumerate(shares.items()):
        ax.barh(np.arange(len(params)) + k * height, v, height=height, label=o)
    ax.set_yticks(np.arange(len(params)) + height * (len(shares) - 1) / 2, params)
    ax.set(title=f"{TITLES['importance']} ({imp.evaluator})", xlabel="importance")
    if len(shares) > 1:
        ax.legend()
    fig.tight_layout()
    return fig


def _loss_curves(table: TrialTable, study_dir: Path | None, n: int) -> dict[int, dict[str, list[float]]]:
    """{trial number: {"epoch": [...], "train_loss": [...], "val_loss": [...]}} for the best ``n`` trials."""
    if study_dir is None or not len(table.complete):
        return {}
    done = table.complete.sort_values(table.primary, ascending=not table.maximize, kind="stable")
    curves = {}
    for _, row in done.head(n).iterrows():
        if not isinstance(row["run_dir"], str):
            continue
        path = Path(study_dir) / row["run_dir"] / "metrics.jsonl"
        series = _read_metrics(path)
        if series["epoch"]:
            curves[int(row["number"])] = series
    return curves


def _read_metrics(path: Path) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"epoch": [], "train_loss": [], "val_loss": []}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a run killed mid-write leaves a cut last line
            continue
        if isinstance(rec, dict) and "epoch" in rec:
            for k in out:
                out[k].append(float(rec.get(k, float("nan"))))
    return out


def _loss_plotly(curves: dict[int, dict[str, list[float]]]) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, (number, c) in enumerate(curves.items()):
        color = _COLORS[i % len(_COLORS)]
        fig.add_trace(
            go.Scatter(x=c["epoch"], y=c["train_loss"], name=f"#{number} train", line={"color": color, "dash": "dot"})
        )
        fig.add_trace(go.Scatter(x=c["epoch"], y=c["val_loss"], name=f"#{number} val", line={"color": color}))
    fig.update_layout(title=TITLES["loss_curves"], xaxis_title="epoch", yaxis_title="loss")
    return fig


def _loss_mpl(curves: dict[int, dict[str, list[float]]]) -> Any:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (number, c) in enumerate(curves.items()):
        color = _COLORS[i % len(_COLORS)]
        ax.plot(c["epoch"], c["train_loss"], ls=":", color=color, label=f"#{number} train")
        ax.plot(c["epoch"], c["val_loss"], color=color, label=f"#{number} val")
    ax.set(title=TITLES["loss_curves"], xlabel="epoch", ylabel="loss")
    ax.xaxis.get_major_locator().set_params(integer=True)  # epochs are whole numbers
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    return fig


_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
