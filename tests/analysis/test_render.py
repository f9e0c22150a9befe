"""Plots in both backends, report.html, and the files analyze writes."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import optuna
import pytest
from conftest import COMPLETE, add_complete, add_pruned, build_single, new_study

from tunelab.analysis import AnalysisResult, analyze, extract
from tunelab.analysis.plots import build_plots
from tunelab.analysis.report import SECTIONS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SINGLE_PLOTS = {"history", "importance", "parallel", "contour", "slice", "learning_curves", "loss_curves"}


def _external_refs(html: str) -> list[str]:
    """src/href attributes of script, link and img tags that point at the network."""
    tags = re.findall(r"<(?:script|link|img)\b[^>]*>", html, flags=re.IGNORECASE)
    return [t for t in tags if re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", t, flags=re.IGNORECASE)]


def test_every_plot_renders_in_both_backends_single(single: tuple[optuna.Study, Path]) -> None:
    study, sdir = single
    r = extract(study)
    plots = {p.key: p for p in build_plots(study, r.table, r.importance, study_dir=sdir)}
    assert set(plots) == SINGLE_PLOTS
    for p in plots.values():
        assert p.skipped is None, (p.key, p.skipped)
        assert p.plotly is not None and p.figure is not None, p.key
        assert p.html_name.startswith("coarse_")
    assert len(plots["loss_curves"].plotly.data) == 2 * 5  # train + val for each of the top 5 trials
    assert {"coarse_history.html", "coarse_param_importance.html", "coarse_parallel.html"} <= {
        p.html_name for p in plots.values()
    }


def test_every_plot_renders_in_both_backends_multi(multi: optuna.Study, tmp_path: Path) -> None:
    r = analyze(study=multi, out_dir=tmp_path)
    assert r.plots["pareto"] == "rendered"
    assert {k for k, v in r.plots.items() if v == "rendered"} == SINGLE_PLOTS - {"loss_curves"} | {"pareto"}
    assert (tmp_path / "plots" / "pareto_front.png").read_bytes().startswith(PNG_MAGIC)
    assert (tmp_path / "plots" / "coarse_pareto_front.html").is_file()
    assert "pareto" in (tmp_path / "report.html").read_text()


@pytest.fixture(scope="module")
def analyzed(tmp_path_factory: pytest.TempPathFactory) -> tuple[AnalysisResult, Path]:
    """One full analyze() of the single-objective study, shared by the file checks below."""
    study, sdir = build_single(tmp_path_factory.mktemp("analyzed"))
    del study
    return analyze(study_dir=sdir, gap_threshold=0.12), sdir


def test_analyze_writes_tables_plots_and_report(analyzed: tuple[AnalysisResult, Path]) -> None:
    r, sdir = analyzed
    plots = sdir / "plots"
    for name in (
        "optimization_history.png",
        "param_importances.png",
        "parallel_coordinate.png",
        "contour_plot.png",
        "slice_plot.png",
        "learning_curves.png",
        "loss_curves.png",
    ):
        assert (plots / name).read_bytes().startswith(PNG_MAGIC), name
    assert not (plots / "pareto_front.png").exists()  # one objective: no Pareto plot
    for name in ("coarse_history.html", "coarse_param_importance.html", "coarse_parallel.html", "coarse_contour.html"):
        page = (plots / name).read_text()
        assert 'src="plotly.min.js"' in page and not _external_refs(page)
    assert (plots / "plotly.min.js").stat().st_size > 1_000_000
    data = json.loads((sdir / "analysis" / "analysis.json").read_text())
    assert data["top_k"][0]["number"] == 7 and data["overfitting"]["threshold"] == 0.12
    with open(sdir / "analysis" / "top_k.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(row["number"]) for row in rows] == list(r.top["number"])
    with open(sdir / "analysis" / "overfit_trials.csv") as fh:
        flagged = list(csv.DictReader(fh))
    assert all(float(row["gap"]) > 0.12 for row in flagged) and len(flagged) == 3
    assert all(p in r.files for p in (sdir / "report.html", sdir / "analysis" / "analysis.json"))


def test_report_is_self_contained_with_every_section(analyzed: tuple[AnalysisResult, Path]) -> None:
    _, sdir = analyzed
    html = (sdir / "report.html").read_text()
    for sid, heading in SECTIONS:
        assert f"<section id='{sid}'><h2>{heading}</h2>" in html
    assert not _external_refs(html)
    assert "<link" not in html.lower()
    # plotly.js is not inlined: the report loads the plot pages' one copy, so a study carries it once
    assert "plotly.js v" not in html and html.count("Plotly.newPlot") >= 7
    assert "<script src='plots/plotly.min.js'" in html and (sdir / "plots" / "plotly.min.js").is_file()
    assert (sdir / "report.html").stat().st_size < 1_000_000
    assert "sqlite:///" in html and "single" in html
    assert ".plot{margin:1rem 0;max-width:100%;overflow-x:auto}" in html  # wide plots scroll, not overflow
    assert '"responsive": true' in html
    assert "Trials over the threshold (3)" in html and "Pruned at epoch" in html


def test_report_without_plots_and_small_studies(tmp_path: Path) -> None:
    empty = new_study(tmp_path / "e.db", "empty", ["maximize"], ["val_f1"])
    r = analyze(study=empty, out_dir=tmp_path / "empty")
    html = (tmp_path / "empty" / "report.html").read_text()
    assert "no trials yet" in html and all(f"id='{sid}'" in html for sid, _ in SECTIONS)
    assert r.plots["history"] == "skipped: no completed trials"
    assert all(v.startswith("skipped") for v in r.plots.values())

    pruned = new_study(tmp_path / "p.db", "pruned", ["maximize"], ["val_f1"])
    add_pruned(pruned, 2)
    add_pruned(pruned, 3)
    r = analyze(study=pruned, out_dir=tmp_path / "pruned")
    assert r.plots["learning_curves"] == "rendered" and r.plots["history"].startswith("skipped")
    assert "were pruned" in (tmp_path / "pruned" / "report.html").read_text()

    one = new_study(tmp_path / "o.db", "one", ["maximize"], ["val_f1"])
    add_complete(one, COMPLETE[0])
    r = analyze(study=one, out_dir=tmp_path / "one", plots=False)
    assert "only 1 completed trial" in r.messages[0]
    assert "plots were not rendered" in (tmp_path / "one" / "report.html").read_text()
    assert not (tmp_path / "one" / "plots").exists()


@pytest.mark.parametrize("evaluator", ["ped_anova", "mdi"])
def test_other_importance_evaluators(single: tuple[optuna.Study, Path], evaluator: str) -> None:
    study, _ = single
    r = analyze(study=study, importance=evaluator, plots=False)
    assert r.out_dir is None and r.files == []  # no directory known: nothing written
    assert sum(r.importance.values["val_f1"].values()) == pytest.approx(1.0)


def test_plots_name_their_axes_and_keep_the_objective_off_the_first_axis(single: tuple[optuna.Study, Path]) -> None:
    study, sdir = single
    r = extract(study)
    plots = {p.key: p for p in build_plots(study, r.table, r.importance, study_dir=sdir)}
    par = plots["parallel"]
    ax = par.figure.axes[0]
    names = [t.get_text() for t in ax.get_xticklabels()]
    assert names == [p for p in r.importance.ranked() if p not in r.importance.skipped][: len(names)]
    assert "val_f1" not in names and {"train.lr", "model.name"} <= set(names)
    assert all(t.get_rotation() == 30 for t in ax.get_xticklabels())  # tilted: long names do not overlap
    assert par.figure.axes[1].get_ylabel() == "val_f1"  # the objective names the colour bar
    trace = next(t for t in par.plotly.data if t.type == "parcoords")
    assert trace.dimensions[-1].label == "val_f1" and trace.dimensions[0].label != "val_f1" and trace.labelangle == -25
    curves = plots["learning_curves"]
    assert (curves.figure.axes[0].get_xlabel(), curves.figure.axes[0].get_ylabel()) == (
        "epoch",
        "val_f1 (reported per epoch)",
    )
    layout = curves.plotly.layout
    assert (layout.xaxis.title.text, layout.yaxis.title.text) == ("epoch", "val_f1 (reported per epoch)")


def test_report_of_an_open_study_names_its_storage(single: tuple[optuna.Study, Path], tmp_path: Path) -> None:
    study, _ = single  # as `tunelab tune` passes it: no storage URL given
    analyze(study=study, out_dir=tmp_path, plots=False)
    html = (tmp_path / "report.html").read_text()
    assert "<dt>storage</dt><dd>sqlite:///" in html


def test_a_learning_curve_png_of_many_trials_drops_its_legend_of_trial_numbers(
    single: tuple[optuna.Study, Path], tmp_path: Path
) -> None:
    from tunelab.analysis.plots import MAX_LEGEND

    study, sdir = single  # 10 trials with curves: a legend fits
    r = extract(study)
    few = {p.key: p for p in build_plots(study, r.table, r.importance, study_dir=sdir, backends=("matplotlib",))}
    assert few["learning_curves"].figure.axes[0].get_legend() is not None
    many = new_study(tmp_path / "many.db", "many", ["maximize"], ["val_f1"])
    for i in range(MAX_LEGEND + 3):  # 84 trials of a real study drew a legend taller than the figure
        add_complete(many, COMPLETE[i % len(COMPLETE)])
    r = extract(many)
    plots = {p.key: p for p in build_plots(many, r.table, r.importance, backends=("matplotlib",))}
    assert plots["learning_curves"].figure.axes[0].get_legend() is None
