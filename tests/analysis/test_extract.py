"""Extracted numbers against hand computation, without rendering anything."""

from __future__ import annotations

import html
import json
import math
import statistics
from pathlib import Path

import optuna
import pytest
from conftest import COMPLETE, DISTS, MAX_EPOCHS, add_complete, add_failed, add_pruned, add_running, new_study
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial
from scipy import stats

from tunelab.analysis import extract
from tunelab.analysis.frame import trial_table
from tunelab.analysis.importance import param_importance
from tunelab.analysis.overfitting import DEFAULT_GAP_THRESHOLD

F1 = [row[4] for row in COMPLETE]
GAPS = [row[6] - row[5] for row in COMPLETE]


def test_top_k_order_matches_values(single: tuple[optuna.Study, Path]) -> None:
    study, _ = single
    r = extract(study, top_k_n=5)
    expected = sorted(range(len(F1)), key=lambda i: -F1[i])[:5]
    assert list(r.top["number"]) == expected
    assert list(r.top["val_f1"]) == sorted(F1, reverse=True)[:5]
    assert list(r.top["rank"]) == [1, 2, 3, 4, 5]
    best = COMPLETE[expected[0]]
    row = r.top.iloc[0]
    assert row["epochs"] == best[7] and row["max_epochs"] == MAX_EPOCHS
    assert row["gap"] == pytest.approx(best[6] - best[5])
    assert row["n_params"] == best[1] * 100
    assert row["train.lr"] == best[0] and row["model.name"] == best[2]


def test_minimize_direction_sorts_ascending(tmp_path: Path) -> None:
    study = new_study(tmp_path / "min.db", "min", ["minimize"], ["val_loss"])
    for row in COMPLETE:
        add_complete(study, row, values=[row[6]])
    r = extract(study, top_k_n=3)
    assert list(r.top["number"]) == sorted(range(len(COMPLETE)), key=lambda i: COMPLETE[i][6])[:3]
    # the objective "val_loss" clashes with no top-k column, so it names its column
    assert "val_loss" in r.top.columns


def test_ties_rank_by_validation_loss_as_the_best_trial_does(tmp_path: Path) -> None:
    from tunelab.results.study import best_trial

    study = new_study(tmp_path / "tie.db", "tie", ["maximize"], ["val_f1"])
    # three trials tie at val_f1 0.9 (a small validation split); the second has the lowest loss
    for vl in (0.40, 0.20, 0.30):
        add_complete(study, (1e-3, 64, "gru", 0.1, 0.9, 0.1, vl, 10, 9))
    add_complete(study, (1e-3, 64, "lstm", 0.1, 0.8, 0.1, 0.05, 10, 9))
    r = extract(study, top_k_n=4)
    assert list(r.top["number"]) == [1, 2, 0, 3]
    best = best_trial(study)
    assert best is not None and best.number == 1
    families = r.families.set_index("model")
    assert families.loc["gru", "best_trial"] == 1


def test_categorical_impact_per_value_means(single: tuple[optuna.Study, Path]) -> None:
    study, _ = single
    r = extract(study)
    imp = next(i for i in r.impact if i.param == "model.name")
    assert imp.kind == "categorical" and imp.spearman is None
    table = imp.table.set_index("group")
    for name in ("gru", "lstm"):
        vals = [row[4] for row in COMPLETE if row[2] == name]
        assert table.loc[name, "mean"] == pytest.approx(statistics.mean(vals))
        assert table.loc[name, "std"] == pytest.approx(statistics.stdev(vals))
        assert table.loc[name, "count"] == len(vals)
    assert imp.best == "gru"  # maximize: higher mean wins


def test_numeric_impact_per_value_and_spearman(single: tuple[optuna.Study, Path]) -> None:
    study, _ = single
    r = extract(study)
    hidden = next(i for i in r.impact if i.param == "model.hidden_dim")
    table = hidden.table.set_index("group")
    assert list(table.index) == ["32", "64", "96", "128"]  # 4 repeated values: one row each, in order
    for h in (32, 64, 96, 128):
        assert table.loc[str(h), "mean"] == pytest.approx(statistics.mean(row[4] for row in COMPLETE if row[1] == h))
    expected = stats.spearmanr([row[1] for row in COMPLETE], F1)
    assert hidden.spearman == pytest.approx(expected.statistic)
    assert hidden.p_value == pytest.approx(expected.pvalue)


def test_numeric_impact_quantile_bins(single: tuple[optuna.Study, Path]) -> None:
    study, _ = single
    r = extract(study)
    lr = next(i for i in r.impact if i.param == "train.lr")
    assert len(lr.table) == 4 and lr.table["count"].sum() == len(COMPLETE)
    by_lr = [f1 for _, f1 in sorted((row[0], row[4]) for row in COMPLETE)]
    hand = [statistics.mean(by_lr[i : i + 2]) for i in range(0, 8, 2)]  # 8 distinct values → 4 bins of 2
    assert list(lr.table["mean"]) == pytest.approx(hand)
    assert lr.table["group"].iloc[0].startswith("[0.0001,")
    assert lr.spearman == pytest.approx(stats.spearmanr([row[0] for row in COMPLETE], F1).statistic)


def test_overfitting_flags_only_trials_over_threshold(single: tuple[optuna.Study, Path]) -> None:
    study, _ = single
    r = extract(study, gap_threshold=0.12)
    o = r.overfitting
    assert o.threshold == 0.12
    assert set(o.flagged["number"]) == {i for i, g in enumerate(GAPS) if g > 0.12}
    assert (o.flagged["gap"] > 0.12).all()
    assert list(o.flagged["gap"]) == sorted(o.flagged["gap"], reverse=True)
    assert o.stats["count"] == len(GAPS)
    assert o.stats["mean"] == pytest.approx(statistics.mean(GAPS))
    assert o.stats["max"] == pytest.approx(max(GAPS))
    lr = o.drivers.set_index("param").loc["train.lr"]
    assert lr["rho"] == pytest.approx(stats.spearmanr([row[0] for row in COMPLETE], GAPS).statistic)
    assert lr["strength"] == pytest.approx(abs(lr["rho"]))
    assert list(o.drivers["strength"]) == sorted(o.drivers["strength"], reverse=True)
    assert extract(study).overfitting.threshold == DEFAULT_GAP_THRESHOLD


def test_pruning_and_early_stopping_stats(single: tuple[optuna.Study, Path]) -> None:
    study, _ = single
    t = extract(study).training
    assert t.counts == {"COMPLETE": 8, "PRUNED": 2, "FAIL": 1, "RUNNING": 1, "WAITING": 0}
    assert t.pruned_share == pytest.approx(2 / 10)
    assert list(t.pruned_at["epoch"]) == [2, 3] and list(t.pruned_at["count"]) == [1, 1]
    assert t.pruned_epoch_mean == pytest.approx(2.5)
    assert t.early_stopped == sum(row[7] < MAX_EPOCHS for row in COMPLETE)
    trained = sum(row[7] for row in COMPLETE) + 2 + 3
    assert t.budget_used == pytest.approx(trained / (10 * MAX_EPOCHS))
    assert t.epochs_saved == 10 * MAX_EPOCHS - trained
    assert t.mean_best_epoch == pytest.approx(statistics.mean(row[8] for row in COMPLETE))
    assert list(t.fail_reasons["reason"]) == ["out of memory"]


def test_family_summary(single: tuple[optuna.Study, Path]) -> None:
    study, _ = single
    fam = extract(study).families.set_index("model")
    for name in ("gru", "lstm"):
        vals = [row[4] for row in COMPLETE if row[2] == name]
        assert fam.loc[name, "complete"] == len(vals)
        assert fam.loc[name, "mean"] == pytest.approx(statistics.mean(vals))
        assert fam.loc[name, "std"] == pytest.approx(statistics.stdev(vals))
        assert (fam.loc[name, "min"], fam.loc[name, "max"]) == (min(vals), max(vals))
    assert fam.loc["lstm", "pruned"] == 2 and fam.loc["gru", "failed"] == 1
    assert fam.loc["gru", "trials"] == 5 + 1 + 1  # complete + failed + running
    assert fam.loc["gru", "best_trial"] == 7


def test_running_study_summary(single: tuple[optuna.Study, Path]) -> None:
    study, _ = single
    s = extract(study).summary
    assert s.counts["RUNNING"] == 1 and s.n_trials_planned == 20 and s.phase == "coarse"
    assert s.best[0]["number"] == 7 and s.best[0]["values"] == {"val_f1": 0.9}
    assert s.messages == []


def test_pareto_front_is_non_dominated(multi: optuna.Study) -> None:
    r = extract(multi)
    pts = {i: (row[4], row[1] * 100) for i, row in enumerate(COMPLETE)}

    def dominated(i: int) -> bool:
        f, n = pts[i]
        return any(f2 >= f and n2 <= n and (f2 > f or n2 < n) for j, (f2, n2) in pts.items() if j != i)

    assert r.pareto is not None
    assert set(r.pareto["number"]) == {i for i in pts if not dominated(i)} == {0, 2, 7}
    assert list(r.pareto.columns[:3]) == ["number", "val_f1", "n_params"]
    assert {b["number"] for b in r.summary.best} == {0, 2, 7}
    assert set(r.importance.values) == {"val_f1", "n_params"}
    assert extract(new_study_single(multi)).pareto is None


def new_study_single(multi: optuna.Study) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    add_complete(study, COMPLETE[0])
    return study


def test_importance_normalised_and_degenerate_params(tmp_path: Path) -> None:
    study = new_study(tmp_path / "imp.db", "imp", ["maximize"], ["val_f1"])
    for row in COMPLETE:
        add_complete(study, (*row[:3], 0.25, *row[4:]))  # dropout never varies
    cond = {**DISTS, "model.num_heads": FloatDistribution(1, 8)}
    study.add_trial(create_trial(params={"train.lr": 1e-3, "model.hidden_dim": 64, "model.name": "gru", "train.dropout": 0.25, "model.num_heads": 2.0},
                                 distributions=cond, value=0.7))  # fmt: skip
    imp = param_importance(study, trial_table(study))
    scores = imp.values["val_f1"]
    assert sum(scores.values()) == pytest.approx(1.0)
    assert "took one value only" in imp.skipped["train.dropout"]
    assert "not sampled in every" in imp.skipped["model.num_heads"]
    assert set(scores) == {"train.lr", "model.hidden_dim", "model.name"}
    assert imp.ranked() == sorted(scores, key=lambda p: -scores[p])
    ped = param_importance(study, trial_table(study), "ped_anova")
    assert set(ped.values["val_f1"]) == set(scores)


def test_constant_objective_gives_zero_importance_and_a_message(tmp_path: Path) -> None:
    study = new_study(tmp_path / "c.db", "c", ["maximize"], ["val_f1"])
    for row in COMPLETE[:4]:
        add_complete(study, row, values=[0.5])
    imp = param_importance(study, trial_table(study))
    assert set(imp.values["val_f1"].values()) == {0.0}
    assert "same value" in (imp.message or "")


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda s: None, "no trials yet"),
        (lambda s: (add_pruned(s, 2), add_pruned(s, 4)), "all 2 finished trials were pruned"),
        (lambda s: (add_failed(s), add_running(s)), "no completed trials yet (1 fail, 1 running)"),
        (lambda s: (add_complete(s, COMPLETE[0]), add_pruned(s, 1)), "only 1 completed trial"),
    ],
)
def test_small_studies_say_so_plainly(tmp_path: Path, build, words: str) -> None:  # type: ignore[no-untyped-def]
    study = new_study(tmp_path / "s.db", "small", ["maximize"], ["val_f1"])
    build(study)
    r = extract(study)
    assert any(words in m for m in r.messages), r.messages
    assert len(r.messages) == 1  # one plain statement, not a cascade of follow-on warnings
    assert len(r.top) == min(r.summary.n_complete, 5)
    assert r.importance.values == {}
    json.dumps(r.to_dict(), allow_nan=False)  # still serialisable


def test_to_dict_is_strict_json(single: tuple[optuna.Study, Path]) -> None:
    study, _ = single
    d = json.loads(json.dumps(extract(study).to_dict(), allow_nan=False))
    assert d["top_k"][0]["number"] == 7
    assert d["summary"]["counts"]["PRUNED"] == 2
    assert {i["param"] for i in d["impact"]} == set(DISTS)
    assert all(g["std"] is None or not math.isnan(g["std"]) for i in d["impact"] for g in i["groups"])


def test_an_experiment_set_is_analysed_by_experiment_name(tmp_path: Path) -> None:
    # tunelab.experiments enqueues one trial per experiment x seed with no sampled parameter
    study = new_study(tmp_path / "x.db", "set", ["maximize"], ["val_acc"])
    for name, values in {"gru_small": [0.7, 0.72], "gru_big": [0.8, 0.84], "tcn": [0.9]}.items():
        for seed, v in enumerate(values):
            study.add_trial(create_trial(value=v, user_attrs={"experiment": name, "seed": seed}))
    r = extract(study)
    assert r.table.params == ["experiment"] and r.table.named == ["experiment"]
    assert r.top["experiment"].iloc[0] == "tcn"  # the top trials say which experiment they ran
    (imp,) = r.impact
    assert imp.param == "experiment" and list(imp.table["group"]) == ["tcn", "gru_big", "gru_small"]
    # tcn's one trial is the highest, but one draw is noise: best is the best group with 2+ trials
    assert imp.best == "gru_big" and imp.single == 1
    assert "experiment impact table" in (r.importance.message or "")
    assert not any("no parameter varied" in m for m in r.messages)
    from tunelab.analysis import analyze

    done = analyze(study=study, out_dir=tmp_path / "out")
    assert done.plots["parallel"] == "rendered" and "tcn" in (tmp_path / "out" / "report.html").read_text()


def test_single_trial_groups_are_marked_in_report_and_console(tmp_path: Path) -> None:
    from rich.console import Console

    from tunelab.analysis import analyze
    from tunelab.analysis.console import renderables
    from tunelab.analysis.impact import SINGLE_NOTE

    study = new_study(tmp_path / "s.db", "s", ["maximize"], ["val_f1"])
    for row in COMPLETE[:3]:  # model.name: gru twice, lstm once
        add_complete(study, row)
    r = analyze(study=study, out_dir=tmp_path / "out", plots=False)
    name = next(i for i in r.impact if i.param == "model.name")
    assert name.single == 1 and name.best == "gru"
    assert SINGLE_NOTE in (tmp_path / "out" / "report.html").read_text()
    console = Console(width=200, record=True)
    for item in renderables(r):
        console.print(item)
    assert SINGLE_NOTE in console.export_text()


def test_trials_the_clock_stopped_are_not_early_stopped_and_the_report_says_so(tmp_path: Path) -> None:
    """A trial ended by its time share or the study's timeout has not early-stopped and saved no
    epochs; when the clock ended most trials, the console and report.html say the scores are
    limited by the budget."""
    from rich.console import Console

    from tunelab.analysis import analyze
    from tunelab.analysis.console import renderables
    from tunelab.results.attrs import STOP

    study = new_study(tmp_path / "s.db", "s", ["maximize"], ["val_f1"])
    # epochs 10, 7, 10, 6 of 10: a study from before stop reasons (row 0), the clock (7 and 6), max_epochs
    for row, reason in zip(COMPLETE[:4], [None, STOP.SHARE, "max_epochs", STOP.EARLY], strict=True):
        add_complete(study, row, stop_reason=reason)
    t = extract(study).training
    # saved: only the early-stopped trial's 4 epochs; the time-shared one's 3 unused epochs were not saved
    assert (t.time_stopped, t.early_stopped, t.epochs_saved) == (1, 1, MAX_EPOCHS - 6)
    assert t.note is None  # 1 of 4: the budget is not the story
    assert ("stopped by the time budget", "1 of 4") in t.rows()

    add_complete(study, COMPLETE[4], stop_reason=STOP.TIMEOUT)
    r = analyze(study=study, out_dir=tmp_path / "out", plots=False)
    assert r.training.time_stopped == 2 and r.training.note is None  # 2 of 5
    add_complete(study, COMPLETE[5], stop_reason=STOP.SHARE)
    r = analyze(study=study, out_dir=tmp_path / "out", plots=False)
    assert r.training.note is not None and r.training.note.startswith(
        "3 of 6 completed trials were stopped by the time"
    )
    assert html.escape(r.training.note) in (tmp_path / "out" / "report.html").read_text()
    console = Console(width=400, record=True)
    for item in renderables(r):
        console.print(item)
    assert r.training.note in console.export_text()
