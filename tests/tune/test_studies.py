"""Whole studies: samplers, pruners, resume, enqueue, several objectives, storages, artifacts."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from tests.tune.conftest import options, tiny_study
from tunelab.config import load_study_config, validate_config
from tunelab.errors import UserError
from tunelab.results.attrs import STUDY, TRIAL
from tunelab.results.io import load_checkpoint
from tunelab.tune import tune
from tunelab.tune.study import mask_url


def _study(result: Any, storage: str | None = None) -> optuna.Study:
    return optuna.load_study(
        study_name=result.study_name, storage=storage or f"sqlite:///{result.study_dir.parent / 'tunelab.db'}"
    )


def test_artifacts_exist_and_parse(tmp_path: Path, splits: Any) -> None:
    result = tune(tiny_study(), options(tmp_path), data=splits)
    d = result.study_dir
    assert d.name.startswith("t-") and len(d.name) == len("t-20240101-120000")  # a new study carries a timestamp
    meta = json.loads((d / "study.json").read_text())
    assert (
        meta["study_name"] == result.study_name
        and meta["storage"].startswith("sqlite:////")
        and meta["storage_masked"] is False
    )
    again = load_study_config(d / "study.yaml")  # the resolved study file loads again
    assert again.objective.metrics == ["val_f1"] and set(again.space or {}) == {"train.lr", "model.hidden_dim"}
    best_params = json.loads((d / "best_params.json").read_text())
    assert best_params == result.best_params and set(best_params) == {"train.lr", "model.hidden_dim"}
    best_cfg = validate_config(json.loads((d / "best_config.json").read_text()))
    assert best_cfg.train.lr == best_params["train.lr"] and best_cfg.model.hidden_dim == best_params["model.hidden_dim"]
    state, config, _ = load_checkpoint(d / "best_model.pt")
    assert config == json.loads((d / "best_config.json").read_text()) and state
    with open(d / "trials.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["number"] for r in rows] == ["0", "1"] and {
        "state",
        "value",
        "params_train.lr",
        "epochs",
        "gap",
        "n_params",
        "seconds",
        "reason",
        "stop_reason",
    } <= set(rows[0])
    assert {r["stop_reason"] for r in rows} <= {"early_stopping", "max_epochs"}  # why each one stopped
    results = json.loads((d / "study_results.json").read_text())
    assert results["best_trial"]["number"] == result.best_number and len(results["trials"]) == 2 and results["finished"]
    assert sorted(p.name.split("-")[0] for p in (d / "trials").iterdir()) == ["0", "1"]
    study = _study(result)
    assert study.user_attrs[STUDY.OBJECTIVES] == ["val_f1"] and study.user_attrs[STUDY.DIRECTIONS] == ["maximize"]
    assert Path(study.user_attrs[STUDY.SAVE_DIR]) == d.resolve()
    assert study.metric_names == ["val_f1"]  # optuna-dashboard names the objective, not "Objective 0"


def test_resume_continues_numbering_and_keeps_finished_trials(
    tmp_path: Path, splits: Any, caplog: pytest.LogCaptureFixture
) -> None:
    first = tune(tiny_study(), options(tmp_path, study_name="fixed"), data=splits)
    assert first.study_name == "fixed"
    with pytest.raises(UserError, match="already exists"):
        tune(tiny_study(), options(tmp_path, study_name="fixed"), data=splits)
    before = {t.number: t.params for t in _study(first).trials}
    incompatible = tiny_study(
        space={"train.lr": {"low": 1e-3, "high": 3e-2, "log": True}, "model.hidden_dim": [4, 8, 12]}
    )
    with pytest.raises(UserError, match="'model.hidden_dim' was searched as CategoricalDistribution"):
        tune(incompatible, options(tmp_path, study_name="fixed", resume=True), data=splits)
    changed = tiny_study(space={"train.lr": {"low": 1e-3, "high": 5e-2, "log": True}, "model.hidden_dim": [4, 8]})
    with caplog.at_level(logging.WARNING, logger="tunelab"):
        again = tune(changed, options(tmp_path, study_name="fixed", resume=True), data=splits)
    assert "search space changed" in caplog.text and "~train.lr" in caplog.text
    trials = _study(again).trials
    assert [t.number for t in trials] == [0, 1, 2, 3] and all(t.state.name == "COMPLETE" for t in trials)
    assert {t.number: t.params for t in trials[:2]} == before
    assert trials[2].params != before[0]  # a resumed sampler does not replay the first run's proposals
    rows = (again.study_dir / "trials.csv").read_text().splitlines()
    assert len(rows) == 5


def test_resume_without_a_name_picks_the_newest_study_and_errors_when_none(tmp_path: Path, splits: Any) -> None:
    with pytest.raises(UserError, match="--resume: no study named 't' or 't-<timestamp>'"):
        tune(tiny_study(), options(tmp_path, resume=True), data=splits)
    first = tune(tiny_study(budget={"n_trials": 1}), options(tmp_path), data=splits)
    again = tune(tiny_study(budget={"n_trials": 1}), options(tmp_path, resume=True), data=splits)
    assert again.study_name == first.study_name and again.states == {"COMPLETE": 2}
    with pytest.raises(UserError, match="no study 'nope'"):
        tune(tiny_study(), options(tmp_path, study_name="nope", resume=True), data=splits)


def test_enqueued_configurations_run_first(tmp_path: Path, splits: Any) -> None:
    known = tmp_path / "known.json"
    known.write_text(json.dumps([{"train.lr": 0.0123, "model.hidden_dim": 4}]))
    result = tune(tiny_study(), options(tmp_path, enqueue=known), data=splits)
    assert _study(result).trials[0].params == {"train.lr": 0.0123, "model.hidden_dim": 4}
    known.write_text(json.dumps({"train.lrr": 0.01}))
    with pytest.raises(
        UserError, match="'train.lrr' is not a parameter of this study \\(did you mean 'train.lr'\\?\\)"
    ):
        tune(tiny_study(), options(tmp_path, enqueue=known), data=splits)


@pytest.mark.parametrize("sampler", ["nsga2", "tpe"])
def test_two_objectives_write_the_pareto_front(tmp_path: Path, splits: Any, sampler: str) -> None:
    result = tune(
        tiny_study(objective="val_f1,n_params", sampler=sampler, budget={"n_trials": 3}), options(tmp_path), data=splits
    )
    assert result.directions == ["maximize", "minimize"] and result.pareto
    front = json.loads((result.study_dir / "pareto_front.json").read_text())
    assert {p["number"] for p in front} == {p["number"] for p in result.pareto}
    assert set(front[0]["values"]) == {"val_f1", "n_params"}
    assert _study(result).metric_names == ["val_f1", "n_params"]
    header = (result.study_dir / "trials.csv").read_text().splitlines()[0]
    assert "value_val_f1" in header and "value_n_params" in header
    trial = _study(result).trials[0]
    assert (
        trial.values[1] == trial.user_attrs[TRIAL.N_PARAMS] and not trial.intermediate_values
    )  # no pruning with two objectives


def test_objective_must_fit_the_task(tmp_path: Path, splits: Any) -> None:
    with pytest.raises(UserError, match="objective 'val_mse' does not exist for a classification task"):
        tune(tiny_study(objective="val_mse"), options(tmp_path), data=splits)


def test_journal_file_storage(tmp_path: Path, splits: Any) -> None:
    url = f"journal://{tmp_path / 'studies.log'}"
    result = tune(tiny_study(storage=url, budget={"n_trials": 1}), options(tmp_path), data=splits)
    meta = json.loads((result.study_dir / "study.json").read_text())
    assert meta["storage"] == url
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(
        study_name=result.study_name, storage=JournalStorage(JournalFileBackend(str(tmp_path / "studies.log")))
    )
    assert study.trials[0].state.name == "COMPLETE"


def test_passwords_are_masked_everywhere(tmp_path: Path, splits: Any) -> None:
    assert mask_url("postgresql://alice:s3cret@db:5432/tl") == "postgresql://alice:***@db:5432/tl"
    assert mask_url("sqlite:///runs/tunelab.db") == "sqlite:///runs/tunelab.db"
    with pytest.raises(UserError) as info:
        tune(tiny_study(storage="postgresql://alice:s3cret@127.0.0.1:1/tl"), options(tmp_path), data=splits)
    assert "s3cret" not in str(info.value) and "alice:***@" in str(info.value)
    from tunelab.results.study import StudyWriter

    StudyWriter(tmp_path / "s").start(
        "s", "postgresql://alice:s3cret@db/tl", mask_url("postgresql://alice:s3cret@db/tl"), {"storage": "x"}
    )
    meta = json.loads((tmp_path / "s" / "study.json").read_text())
    assert meta == {"storage": "postgresql://alice:***@db/tl", "study_name": "s", "storage_masked": True}


def test_the_best_model_reevaluates_to_the_reported_numbers(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tunelab.cli import app

    base = {
        "data": {"name": "synthetic_gestures", "options": {"n": 90, "classes": 3, "min_len": 6, "max_len": 12}},
        "model": {"name": "gru", "hidden_dim": 8, "num_layers": 1},
        "train": {"max_epochs": 2, "batch_size": 16},
        "device": "cpu",
    }
    result = tune(tiny_study(base=base, budget={"n_trials": 2}), options(tmp_path))
    out = CliRunner().invoke(app, ["evaluate", str(result.study_dir), "--json"])
    assert out.exit_code == 0, out.output
    metrics = json.loads(out.output)
    for key in ("val_f1", "test_acc", "test_f1", "test_loss"):
        assert metrics[key] == pytest.approx(result.best_metrics[key], abs=1e-5), key
    assert result.best_values[0] == pytest.approx(metrics["val_f1"], abs=1e-5)
    torch.manual_seed(0)


def test_study_files_are_refreshed_within_a_share_of_the_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tunelab.results.study as study_files

    clock = {"now": 100.0}
    monkeypatch.setattr(study_files.time, "monotonic", lambda: clock["now"])
    writer = study_files.StudyWriter(tmp_path / "s")
    calls: list[float] = []

    def slow_update(study: Any, objectives: Any, *, final: bool = False) -> None:
        calls.append(clock["now"])
        clock["now"] += 1.0  # a rewrite that takes one second

    monkeypatch.setattr(writer, "update", slow_update)
    assert writer.refresh(None, ["val_f1"])  # type: ignore[arg-type]  # the first always runs
    clock["now"] += 5.0  # 5 s after a 1 s rewrite: another now would be 1/6 of the time
    assert not writer.refresh(None, ["val_f1"])  # type: ignore[arg-type]
    clock["now"] += 4.0  # 9 s since: within the 10% share again
    assert writer.refresh(None, ["val_f1"])  # type: ignore[arg-type]
    assert calls == [100.0, 110.0]
