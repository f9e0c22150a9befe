"""Writers for analysis outputs: tables (JSON + CSV), plots (HTML + PNG) and report.html, all atomic.

Layout inside a study directory::

    analysis/analysis.json      everything, machine-readable
    analysis/<table>.csv        top_k, importance, impact, gap_drivers, overfit_trials, families, pruned_at, pareto_front
    plots/<phase>_<plot>.html   interactive (plotly.js sits once beside them in plots/plotly.min.js)
    plots/<plot>.png            static (matplotlib)
    report.html                 one self-contained page
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pandas as pd

from tunelab.results.io import atomic_write, write_json, write_text

if TYPE_CHECKING:
    from tunelab.analysis.plots import Plot
    from tunelab.analysis.result import AnalysisResult

__all__ = ["write_analysis_tables", "write_plots", "write_report"]

PLOTLY_JS = "plotly.min.js"


def write_analysis_tables(result: AnalysisResult, out_dir: str | Path) -> list[Path]:
    """``analysis/analysis.json`` and one CSV per table; returns the paths written."""
    base = Path(out_dir) / "analysis"
    written = [write_json(base / "analysis.json", result.to_dict())]
    impact_rows = [
        pd.DataFrame(
            {
                "param": i.param,
                "kind": i.kind,
                "spearman": i.spearman,
                "p_value": i.p_value,
                **{c: i.table[c] for c in i.table.columns},
            }
        )
        for i in result.impact
    ]
    tables: dict[str, pd.DataFrame | None] = {
        "top_k": result.top,
        "importance": result.importance.frame(),
        "impact": pd.concat(impact_rows, ignore_index=True) if impact_rows else pd.DataFrame(),
        "gap_drivers": result.overfitting.drivers,
        "overfit_trials": result.overfitting.flagged,
        "families": result.families,
        "pruned_at": result.training.pruned_at,
        "pareto_front": result.pareto,
    }
    for name, df in tables.items():
        if df is None:
            continue
        written.append(write_text(base / f"{name}.csv", df.to_csv(index=False)))
    return written


def write_plots(plots: list[Plot], plots_dir: str | Path, *, close: bool = True) -> list[Path]:
    """Each plot's HTML (plotly) and PNG (matplotlib); closes the matplotlib figures unless told not to."""
    plots_dir = Path(plots_dir)
    written: list[Path] = []
    for plot in plots:
        if plot.plotly is not None:
            html = plot.plotly.to_html(include_plotlyjs="directory", full_html=True)  # plotly.js once, beside the pages
            written.append(write_text(plots_dir / plot.html_name, html))
        if plot.figure is not None:
            written.append(_write_png(plots_dir / plot.png_name, plot.figure))
            if close:
                from tunelab.analysis.plots import pyplot

                pyplot().close(plot.figure)
    if any(p.plotly is not None for p in plots) and not (plots_dir / PLOTLY_JS).is_file():
        from plotly.offline import get_plotlyjs

        written.append(write_text(plots_dir / PLOTLY_JS, get_plotlyjs()))
    return written


def _write_png(path: Path, figure: Any) -> Path:
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=110, bbox_inches="tight")

    def write(fh: IO[bytes]) -> None:
        fh.write(buf.getvalue())

    return atomic_write(path, write)


def write_report(path: str | Path, html: str) -> Path:
    """Write report.html."""
    return write_text(path, html)
