"""`tunelab analyze` and `tunelab monitor` through typer's CliRunner; the monitor's frame as data."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pytest
from conftest import COMPLETE, add_complete, add_pruned, new_study, write_study_dir
from typer.testing import CliRunner

from tunelab.analysis.monitor import monitor_frame, render_frame
from tunelab.cli import app
from tunelab.errors import UserError

WIDE = {"COLUMNS": "200"}


def test_analyze_cli_prints_tables_and_writes_report(single: tuple[optuna.Study, Path]) -> None:
    _, sdir = single
    res = CliRunner().invoke(
        app, ["analyze", str(sdir), "--no-plots", "--top-k", "3", "--gap-threshold", "0.12"], env=WIDE
    )
    assert res.exit_code == 0, res.output
    for words in (
        "top 3 trials",
        "hyperparameter importance",
        "impact on val_f1",
        "overfitting",
        "early stopping and pruning",
        "model families",
    ):
        assert words in res.output
    assert "trial #7 (gru): val_f1=0.9" in res.output
    assert (sdir / "report.html").is_file() and not (sdir / "plots").exists()


def test_analyze_tables_stay_readable_at_80_columns(single: tuple[optuna.Study, Path]) -> None:
    _, sdir = single
    res = CliRunner().invoke(app, ["analyze", str(sdir), "--no-plots"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert "…" not in res.output  # no cut names or numbers ("tria…", "0.68…", "model.h…")
    # a name=value pair is never split across lines; parameters by their short names where unique
    for pair in ("hidden_dim=96", "name=gru", "dropout=0.2", "lr=0.005"):
        assert any(pair in line for line in lines), pair
    for name in ("model.hidden_dim", "train.dropout", "train.lr", "model.name"):  # full names in the impact table
        assert any(line.lstrip().startswith(name) for line in lines), name
    assert any("7 (5/0/1)" in line and "#7" in line for line in lines)  # families: one line per family


def test_analyze_cli_with_storage_and_study(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    study = new_study(db, "by-url", ["maximize"], ["val_f1"])
    add_complete(study, COMPLETE[0])
    res = CliRunner().invoke(
        app, ["analyze", "--storage", f"sqlite:///{db}", "--study", "by-url", "--no-plots"], env=WIDE
    )
    assert res.exit_code == 0, res.output
    assert "only 1 completed trial" in res.output and "nothing written" in res.output
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app, ["analyze", "--storage", f"sqlite:///{db}", "--study", "by-url", "--no-plots", "--out", str(out)], env=WIDE
    )
    assert res.exit_code == 0 and (out / "analysis" / "analysis.json").is_file()


def test_analyze_cli_only_pruned_says_so(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    study = new_study(db, "pruned", ["maximize"], ["val_f1"])
    add_pruned(study, 2)
    sdir = write_study_dir(tmp_path, f"sqlite:///{db}", "pruned")
    res = CliRunner().invoke(app, ["analyze", str(sdir), "--no-plots"], env=WIDE)
    assert res.exit_code == 0, res.output
    assert "all 1 finished trials were pruned" in res.output


def test_analyze_cli_user_errors(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["analyze", str(tmp_path)])
    assert isinstance(res.exception, UserError) and "study.json" in str(res.exception)
    res = CliRunner().invoke(app, ["analyze", "--storage", "postgresql://u:hunter2@127.0.0.1:9/db", "--study", "x"])
    assert isinstance(res.exception, UserError) and "hunter2" not in str(res.exception) + res.output


def test_monitor_once_renders(single: tuple[optuna.Study, Path]) -> None:
    _, sdir = single
    res = CliRunner().invoke(app, ["monitor", str(sdir), "--once"], env=WIDE)
    assert res.exit_code == 0, res.output
    for words in (
        "8 complete",
        "2 pruned",
        "1 fail",
        "1 running",
        "11/20 finished",
        "best so far: val_f1 = 0.9",
        "#11",
        "3/10",
        "trials/min",
        "ETA",
    ):
        assert words in res.output, words


def test_monitor_frame_numbers(single: tuple[optuna.Study, Path]) -> None:
    study, _ = single
    first = min(t.datetime_start for t in study.trials if t.datetime_start)
    frame = monitor_frame(study, now=first + timedelta(minutes=5))
    assert frame.finished == 11 and frame.planned == 20 and not frame.done
    assert frame.per_minute == pytest.approx(11 / 5)
    assert frame.eta == pytest.approx((20 - 11) / (11 / 5) * 60)
    (run,) = frame.running
    assert (run.number, run.epoch, run.max_epochs, run.value, run.model) == (11, 3, 10, pytest.approx(0.7), "gru")
    assert (frame.best_number, frame.best_value) == (7, 0.9)
    render_frame(frame)  # renders without a terminal


def test_monitor_frame_done_when_planned_trials_finished(tmp_path: Path) -> None:
    study = new_study(tmp_path / "d.db", "done", ["maximize", "minimize"], ["val_f1", "n_params"], n_trials=2)
    add_complete(study, COMPLETE[0], values=[0.8, 6400.0])
    add_complete(study, COMPLETE[2], values=[0.6, 3200.0])
    frame = monitor_frame(study, now=datetime.now() + timedelta(hours=5))
    assert frame.done and frame.n_pareto == 2 and frame.best_number == 0
    assert frame.elapsed is not None and frame.elapsed < 3600  # measured to the last completion, not to now
