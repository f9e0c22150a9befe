"""What a study taught us: tables (top-k, importance, impact, overfitting, pruning, families,
Pareto front), plots (PNG + interactive HTML), one self-contained report.html, and a live monitor.

Extraction (``extract``) returns plain data and renders nothing; ``analyze`` adds plots and writes
everything through ``tunelab.analysis.writers``.  Works on finished and running studies.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from tunelab.analysis.result import AnalysisResult, extract

if TYPE_CHECKING:
    import optuna

__all__ = ["AnalysisResult", "analyze", "extract"]

log = logging.getLogger(__name__)


def analyze(
    storage: str | None = None,
    study_name: str | None = None,
    out_dir: str | Path | None = None,
    *,
    study_dir: str | Path | None = None,
    study: optuna.Study | None = None,
    top_k: int = 5,
    gap_threshold: float | None = None,
    importance: str = "fanova",
    plots: bool = True,
    report: bool = True,
) -> AnalysisResult:
    """Analyse a study and write its tables, plots and report.

    Name the study by ``storage`` + ``study_name`` (any Optuna storage URL), by ``study_dir`` (a
    ``runs/<study>`` folder holding ``study.json``), or pass an open ``study``.

    Args:
        out_dir: where ``analysis/``, ``plots/`` and ``report.html`` go; defaults to ``study_dir``,
            then to the study's ``save_dir`` attribute.  With none of these, nothing is written.
        top_k: how many best trials to list.
        gap_threshold: trials whose train-val gap exceeds it are flagged (default 0.05).
        importance: ``"fanova"`` (default), ``"ped_anova"`` or ``"mdi"``.
        plots: render PNG + HTML plots (and put them in the report).
        report: write ``report.html``.

    Returns:
        The :class:`AnalysisResult`; ``result.messages`` says plainly what could not be analysed
        (no trials, one completed trial, only pruned trials) instead of raising.
    """
    from tunelab.analysis.source import load_study, mask_url, resolve_study, storage_url, study_info

    shown_storage = mask_url(storage) if storage else ""
    if study is None:
        ref = resolve_study(study_dir, storage=storage, study_name=study_name)
        study, shown_storage = load_study(ref), ref.masked_storage
    elif not shown_storage:  # tune passes its open study: say where it lives all the same
        shown_storage = storage_url(study)
    info = study_info(study)
    base = (
        Path(study_dir)
        if study_dir is not None
        else info.save_dir
        if info.save_dir and info.save_dir.is_dir()
        else None
    )
    target = Path(out_dir) if out_dir is not None else base
    result = extract(
        study, storage=shown_storage, top_k_n=top_k, gap_threshold=gap_threshold, importance=importance, info=info
    )
    result.out_dir = target
    for m in result.messages:
        log.info("%s", m)

    figures = []
    if plots:
        from tunelab.analysis.plots import build_plots
        from tunelab.results.artifacts import restore_top

        if (where := base or target) is not None:  # other hosts' trials: metrics.jsonl from the store
            restore_top(study, where)
        figures = build_plots(study, result.table, result.importance, study_dir=base or target)
        result.plots = {p.key: f"skipped: {p.skipped}" if p.skipped else "rendered" for p in figures}
    if target is None:
        _close(figures)
        return result

    from tunelab.analysis.writers import PLOTLY_JS, write_analysis_tables, write_plots, write_report

    if report:
        from tunelab.analysis.report import render_report

        # the report loads the plot pages' one copy of plotly.js (plots/plotly.min.js), not a second one
        html = render_report(result, figures, plotly_js=f"plots/{PLOTLY_JS}")
        result.files.append(write_report(target / "report.html", html))
    result.files += write_plots(figures, target / "plots")
    result.files += write_analysis_tables(result, target)
    return result


def _close(figures: list) -> None:
    if any(p.figure is not None for p in figures):
        from tunelab.analysis.plots import pyplot

        plt = pyplot()
        for p in figures:
            if p.figure is not None:
                plt.close(p.figure)
