"""Plots of an experiment set: each metric by experiment with error bars, and overlaid learning
curves.  Each is written as a PNG (matplotlib) and an interactive HTML page (plotly, reading
``plotly.min.js`` from the same folder, so the pages work offline)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from tunelab.experiments.comparison import Comparison, Entry
from tunelab.results.io import atomic_write, write_text

__all__ = ["learning_curve", "plot_learning_curves", "plot_metric_by_experiment"]


def _save_png(fig: object, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")  # type: ignore[attr-defined]
    data = buf.getvalue()

    def write(fh: IO[bytes]) -> None:
        fh.write(data)

    return atomic_write(path, write)


def _save_html(fig: object, path: Path) -> Path:
    from plotly.offline import get_plotlyjs

    js = path.parent / "plotly.min.js"
    if not js.is_file():
        write_text(js, get_plotlyjs())
    return write_text(path, fig.to_html(include_plotlyjs="directory", full_html=True))  # type: ignore[attr-defined]


def plot_metric_by_experiment(
    comparison: Comparison, entries: Sequence[Entry], metrics: Sequence[str], stem: Path
) -> dict[str, Path]:
    """One panel per metric: mean ± std over seeds per experiment, each seed as a dot, baseline highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    metrics = [m for m in metrics if m in comparison.metrics] or comparison.metrics[:1]
    names = [e.name for e in entries]
    # one panel per metric, stacked: the experiment names stay readable however many there are
    width = max(6.0, 0.65 * len(names) + 2)
    fig, axes = plt.subplots(len(metrics), 1, figsize=(width, 3.4 * len(metrics)), squeeze=False)
    pfig = make_subplots(rows=len(metrics), cols=1, subplot_titles=list(metrics))
    for i, m in enumerate(metrics):
        ax = axes[i][0]
        means = [comparison.row(n).stats[m].summary.mean for n in names]
        stds = [comparison.row(n).stats[m].summary.std for n in names]
        stds = [0.0 if math.isnan(s) else s for s in stds]
        colors = ["#ff7f0e" if comparison.row(n).baseline else "#1f77b4" for n in names]  # tab:orange, tab:blue
        ax.bar(range(len(names)), means, yerr=stds, color=colors, alpha=0.7, capsize=4)
        for j, e in enumerate(entries):
            ax.scatter([j] * len(e.samples), [s.value(m) for s in e.samples], color="black", s=10, zorder=3)
        finite = [v for v in means if math.isfinite(v)]
        if finite and m.endswith(("acc", "f1")):  # zoom in on the differences, not on 0..min
            low = min(v - s for v, s in zip(means, stds, strict=True) if math.isfinite(v))
            ax.set_ylim(max(0.0, low - 0.05 * (1 - low + 1e-9)), min(1.0, max(finite) + max(stds) + 0.02))
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_title(m)
        ax.grid(axis="y", alpha=0.3)
        pfig.add_trace(
            go.Bar(
                x=names, y=means, error_y={"type": "data", "array": stds}, marker_color=colors, name=m, showlegend=False
            ),
            row=i + 1,
            col=1,
        )
        for e in entries:
            pfig.add_trace(
                go.Scatter(
                    x=[e.name] * len(e.samples),
                    y=[s.value(m) for s in e.samples],
                    mode="markers",
                    marker={"color": "black", "size": 5},
                    text=[s.label for s in e.samples],
                    showlegend=False,
                ),
                row=i + 1,
                col=1,
            )
    fig.suptitle(f"mean ± std over seeds (orange: baseline {comparison.baseline})")
    fig.tight_layout()
    out = {"metric_png": _save_png(fig, stem.with_suffix(".png"))}
    plt.close(fig)
    pfig.update_layout(
        title=f"mean ± std over seeds (orange: baseline {comparison.baseline})",
        template="plotly_white",
        height=320 * len(metrics) + 80,
    )
    out["metric_html"] = _save_html(pfig, stem.with_suffix(".html"))
    return out


def learning_curve(entry: Entry, metric: str) -> tuple[list[int], list[float]]:
    """Mean of ``metric`` over the entry's seeds at each epoch (seeds that stopped early drop out)."""
    by_epoch: dict[int, list[float]] = {}
    for s in entry.samples:
        for rec in s.history:
            v = rec.get(metric)
            if isinstance(v, int | float) and math.isfinite(v):
                by_epoch.setdefault(int(rec.get("epoch", 0)), []).append(float(v))
    epochs = sorted(by_epoch)
    return epochs, [sum(by_epoch[e]) / len(by_epoch[e]) for e in epochs]


def plot_learning_curves(
    entries: Sequence[Entry], metric: str, stem: Path, baseline: str | None = None
) -> dict[str, Path]:
    """``metric`` (and val_loss) per epoch, one line per experiment (mean over its seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go
    from matplotlib.ticker import MaxNLocator
    from plotly.subplots import make_subplots

    panels = [metric] + (["val_loss"] if metric != "val_loss" else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    pfig = make_subplots(rows=1, cols=len(panels), subplot_titles=panels)
    cmap = plt.get_cmap("tab10" if len(entries) <= 10 else "tab20")
    for i, m in enumerate(panels):
        ax = axes[0][i]
        for j, e in enumerate(entries):
            x, y = learning_curve(e, m)
            if not x:
                continue
            width = 2.5 if e.name == baseline else 1.2
            color = cmap(j % cmap.N)
            ax.plot(x, y, label=e.name, lw=width, color=color)
            rgb = "rgb({},{},{})".format(*(int(255 * c) for c in color[:3]))
            pfig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines",
                    name=e.name,
                    legendgroup=e.name,
                    showlegend=i == 0,
                    line={"width": width * 1.5, "color": rgb},
                ),
                row=1,
                col=i + 1,
            )
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{m} (mean over seeds)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))  # outside: curves stay visible
    fig.tight_layout()
    out = {"curves_png": _save_png(fig, stem.with_suffix(".png"))}
    plt.close(fig)
    pfig.update_layout(title="learning curves (mean over seeds; thick: baseline)", template="plotly_white")
    out["curves_html"] = _save_html(pfig, stem.with_suffix(".html"))
    return out
