"""Experiment sets run as one resumable Optuna study, with tune's artifacts and a comparison."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import optuna
import pytest

import tunelab  # noqa: F401
from tunelab.errors import UserError
from tunelab.experiments import run_experiment_set
from tunelab.experiments.runner import EXPERIMENT, SEED

SET = """
name: tiny
base:
  data: {name: synthetic_gestures, options: {n: 60, classes: 3, min_len: 6, max_len: 12}}
  model: {name: gru, hidden_dim: 4, num_layers: 1, dropout: 0.0}
  train: {max_epochs: 2, batch_size: 32}
  device: cpu
repeats: 2
baseline: small
metrics: [val_acc, test_acc]
experiments:
  small: {}
  wide: {model.hidden_dim: 8}
"""


def _write(tmp_path: Path, text: str = SET) -> Path:
    p = tmp_path / "set.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def _trials(tmp_path: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'runs' / 'tunelab.db'}").trials


def test_a_set_runs_resumes_and_reruns_only_what_changed(tmp_path) -> None:
    path = _write(tmp_path)
    seen: list[tuple[str, int]] = []
    first = run_experiment_set(
        path, save_dir=tmp_path / "runs", on_trial=lambda t: seen.append((t.user_attrs[EXPERIMENT], t.user_attrs[SEED]))
    )
    assert (
        first.ran == 4 and first.skipped == 0 and sorted(seen) == [("small", 0), ("small", 1), ("wide", 0), ("wide", 1)]
    )
    comp = first.comparison
    assert [r.name for r in comp.rows] == ["small", "wide"] and comp.row("small").baseline
    assert comp.metrics[:2] == ["val_acc", "test_acc"] and comp.row("wide").n == 2
    assert comp.row("wide").stats["n_params"].summary.mean > comp.row("small").stats["n_params"].summary.mean
    sdir = tmp_path / "runs" / "tiny"
    for name in (
        "study.json",
        "trials.csv",
        "study_results.json",
        "comparison.csv",
        "comparison.json",
        "comparison.md",
        "plots/metric_by_experiment.png",
        "plots/metric_by_experiment.html",
        "plots/learning_curves.png",
        "plots/plotly.min.js",
    ):
        assert (sdir / name).is_file(), name
    assert len(list((sdir / "trials").iterdir())) == 4
    data = json.loads((sdir / "comparison.json").read_text())
    assert {"val_acc", "test_acc", "test_f1", "val_loss", "n_params", "seconds_per_epoch"} <= {
        c["metric"] for c in data["cells"]
    }
    assert data["baseline"] == "small" and data["level"] == 0.95

    again = run_experiment_set(path, save_dir=tmp_path / "runs")  # nothing left to do
    assert again.ran == 0 and again.skipped == 4 and len(_trials(tmp_path)) == 4

    # add an experiment and change one: only their trials run
    _write(
        tmp_path,
        SET.replace(
            "wide: {model.hidden_dim: 8}",
            "wide: {model.hidden_dim: 6}\n  lstm: {overrides: {model.name: lstm}, repeats: 1}",
        ),
    )
    third = run_experiment_set(path, save_dir=tmp_path / "runs")
    assert third.ran == 3 and third.skipped == 2 and len(_trials(tmp_path)) == 7
    assert [r.name for r in third.comparison.rows] == ["small", "wide", "lstm"]
    wide = [t for t in _trials(tmp_path) if t.user_attrs[EXPERIMENT] == "wide"]
    assert sorted(t.user_attrs["config"]["model"]["hidden_dim"] for t in wide) == [6, 6, 8, 8]
    assert (
        third.comparison.row("wide").stats["n_params"].summary.mean == wide[-1].user_attrs["n_params"]
    )  # the current config's runs only


def test_an_interrupted_set_resumes_with_the_queued_trials(tmp_path) -> None:
    path = _write(tmp_path, SET.replace("repeats: 2", "repeats: 1"))
    from tunelab.experiments.runner import _open, _plan
    from tunelab.experiments.spec import load_experiment_set

    # a run that queued its two trials and died before training them
    _, jobs = load_experiment_set(path)
    study, _ = _open(f"sqlite:///{(tmp_path / 'runs' / 'tunelab.db').resolve()}", "tiny", "val_acc")
    study.set_user_attr("kind", "experiment_set")
    assert _plan(study, jobs) == 0
    result = run_experiment_set(path, save_dir=tmp_path / "runs")
    assert result.ran == 2 and len(_trials(tmp_path)) == 2  # the queued trials ran, none was added twice
    assert all(t.state.name == "COMPLETE" for t in _trials(tmp_path))


def test_a_killed_run_is_resumed_and_its_trial_rerun(tmp_path) -> None:
    from tunelab.experiments.runner import _open, _plan
    from tunelab.experiments.spec import load_experiment_set
    from tunelab.tune.execution.owners import OWNER_ATTR, this_process

    path = _write(tmp_path, SET.replace("repeats: 2", "repeats: 1"))
    _, jobs = load_experiment_set(path)
    study, _ = _open(f"sqlite:///{(tmp_path / 'runs' / 'tunelab.db').resolve()}", "tiny", "val_acc")
    study.set_user_attr("kind", "experiment_set")
    _plan(study, jobs)
    # the killed run had started one trial: RUNNING, owned by a process that no longer exists
    trial = study.ask()
    host, ns, _, _ = this_process().split("|")
    study._storage.set_trial_system_attr(trial._trial_id, OWNER_ATTR, f"{host}|{ns}|{2**22 + 12345}|1")
    result = run_experiment_set(path, save_dir=tmp_path / "runs")
    states = sorted(t.state.name for t in _trials(tmp_path))
    assert states == ["COMPLETE", "COMPLETE", "FAIL"]  # the orphan failed, its retry and the other trial ran
    assert result.ran == 2 and all(r.n == 1 for r in result.comparison.rows)


def test_a_tune_study_of_the_same_name_is_not_reused(tmp_path) -> None:
    storage = f"sqlite:///{(tmp_path / 'db.sqlite').resolve()}"
    tune = optuna.create_study(study_name="tiny", storage=storage)
    tune.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    with pytest.raises(UserError, match="tune study"):
        run_experiment_set(_write(tmp_path), save_dir=tmp_path / "runs", storage=storage)


@pytest.mark.slow
def test_two_workers_share_the_queue(tmp_path) -> None:
    result = run_experiment_set(_write(tmp_path), save_dir=tmp_path / "runs", workers=2)
    trials = _trials(tmp_path)
    assert result.ran == 4 and len(trials) == 4 and all(t.state.name == "COMPLETE" for t in trials)
    assert sorted((t.user_attrs[EXPERIMENT], t.user_attrs[SEED]) for t in trials) == [
        ("small", 0),
        ("small", 1),
        ("wide", 0),
        ("wide", 1),
    ]


def test_cli_runs_a_set_and_prints_the_comparison(tmp_path) -> None:
    from typer.testing import CliRunner

    from tunelab.cli import app

    path = _write(tmp_path, SET.replace("repeats: 2", "repeats: 1"))
    res = CliRunner().invoke(
        app, ["experiments", str(path), "--save-dir", str(tmp_path / "runs"), "--epochs", "1", "-m", "test_acc"]
    )
    assert res.exit_code == 0, res.output
    assert "2 experiments, 2 trials" in res.output and "small" in res.output and "wide" in res.output
    assert "comparison.md" in res.output
    assert all(t.user_attrs["config"]["train"]["max_epochs"] == 1 for t in _trials(tmp_path))
    bad = CliRunner().invoke(
        app, ["experiments", str(path), "--save-dir", str(tmp_path / "fresh"), "--epochs", "1", "-m", "test_nope"]
    )
    assert isinstance(bad.exception, UserError) and "--metric test_nope" in str(bad.exception)
    assert not (tmp_path / "fresh").exists()  # refused before anything ran


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (("name: synthetic_gestures", "name: synthetic_gesture"), "unknown dataset 'synthetic_gesture'"),
        (("metrics: [val_acc,", "metrics: [val_mse,"), "objective 'val_mse' does not exist for a classification task"),
    ],
)
def test_bad_data_or_objective_is_refused_before_anything_is_written(tmp_path, change, match) -> None:
    path = _write(tmp_path, SET.replace(*change))
    with pytest.raises(UserError, match=match):
        run_experiment_set(path, save_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
