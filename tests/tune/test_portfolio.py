"""The default portfolio (no model named) and the study's time budget bounding running trials."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from typer.testing import CliRunner

from tests.tune.conftest import GESTURES_CLI, TINY_BASE, options
from tunelab.budget import DataSize
from tunelab.cli import app
from tunelab.config import pack_key
from tunelab.results.attrs import STUDY, TRIAL
from tunelab.results.study import time_stopped_note
from tunelab.train import BaseCallback
from tunelab.tune import study_from_mapping, tune
from tunelab.tune.execution.deadline import STOP_REASON
from tunelab.tune.options import TuneOptions
from tunelab.tune.reporting.report import best_summary
from tunelab.tune.space.portfolio import (
    DEFAULT_TIMEOUT,
    budget_line,
    known_good,
    portfolio_families,
    portfolio_for,
    portfolio_pruner,
    portfolio_space,
)

#: the tiny base without a model: the portfolio picks the families
BASE: dict[str, Any] = {k: v for k, v in TINY_BASE.items() if k != "model"}


def _load(tmp_path: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'tunelab.db'}")


def test_the_portfolio_spans_recurrent_convolutional_and_attention_families_in_rank_order() -> None:
    fams = portfolio_families("classification")
    assert fams == ["inception_time", "resnet", "fcn", "transformer", "gru"]
    assert "lstm" not in fams and "conv_gru" not in fams  # subclasses of GRUConfig do not inherit its entry
    assert portfolio_families("seq2seq") == ["transformer", "gru"]  # only families that build for the task


def test_the_portfolio_space_searches_values_inside_a_few_shape_groups() -> None:
    fams = portfolio_families("classification")
    space = portfolio_space(fams)
    assert "train.batch_size" not in space  # the data-aware batch: one shape for every trial of a group
    assert space["train.lr"].log and space["model.dropout"].type == "float"
    assert space["model.num_modules"].choices == [6, 3]
    assert space["model.num_modules"].when == {"model.name": ["inception_time"]}
    assert space["model.bidirectional"].when == {"model.name": ["gru"]}
    shape_keys = [k for k, v in space.items() if v.type == "categorical"]
    groups = {f: 1 for f in fams}
    for key in shape_keys:
        for fam in space[key].when["model.name"]:  # type: ignore[index, union-attr]
            groups[fam] *= len(space[key].choices or [])
    assert groups == {"inception_time": 2, "resnet": 2, "fcn": 2, "transformer": 2, "gru": 4}


def test_known_good_configurations_lie_inside_the_space_with_the_papers_settings() -> None:
    fams = portfolio_families("classification")
    space = portfolio_space(fams)
    starts = known_good(fams)
    assert [s["model.name"] for s in starts] == fams
    inception = starts[0]
    assert inception["train.lr"] == 1e-3 and inception["model.num_modules"] == 6 and inception["model.dropout"] == 0
    for start in starts:
        for key, value in start.items():
            if key == "model.name":
                continue
            spec = space[key]
            if spec.type == "categorical":
                assert value in (spec.choices or []), (key, value)
            else:
                assert spec.low is not None and spec.high is not None and spec.low <= value <= spec.high, (key, value)


def test_hyperband_rungs_start_after_about_a_hundred_steps_and_end_at_the_epoch_ceiling() -> None:
    pruner = portfolio_pruner(steps_per_epoch=14, max_epochs=286)
    assert pruner.name == "hyperband"
    assert pruner.options == {"min_resource": 8, "max_resource": 286, "reduction_factor": 3}
    assert portfolio_pruner(1000, 20).options["min_resource"] == 1  # large data: one epoch is plenty


def test_the_default_budget_is_ten_minutes_and_a_given_budget_wins() -> None:
    assert budget_line(600, None, True) == "budget: 10 min (default; --timeout to change)"
    assert budget_line(30, 5, False) == "budget: 30 s or 5 trials (whichever ends first)"
    cfg = study_from_mapping({"base": BASE})
    new, queue, line = portfolio_for(cfg, TuneOptions(portfolio=True), "classification", DataSize(200))
    assert new.budget.timeout == DEFAULT_TIMEOUT and new.budget.n_trials is None
    assert line == "budget: 10 min (default; --timeout to change)" and len(queue) == 5
    given = study_from_mapping({"base": BASE, "budget": {"timeout": 30}, "pruner": "median"})
    new, _, line = portfolio_for(given, TuneOptions(portfolio=True), "classification", DataSize(200))
    assert new.budget.timeout == 30 and new.pruner.name == "median" and line == "budget: 30 s"
    plain, queue, _ = portfolio_for(cfg, TuneOptions(), "classification", DataSize(200))
    assert plain is cfg and queue == []  # a named model: no portfolio
    named = study_from_mapping({"base": BASE, "families": ["gru"]})  # --auto-tune-all's per-family studies
    same, queue, line = portfolio_for(named, TuneOptions(portfolio=True), "classification", DataSize(200))
    assert same is named and queue == [] and line == "budget: 20 trials"


def test_the_timeout_stops_running_trials_at_an_epoch_end_and_they_complete(tmp_path: Path, splits: Any) -> None:
    base = {**TINY_BASE, "train": {**TINY_BASE["train"], "max_epochs": 100000, "early_stopping": {"patience": None}}}
    cfg = study_from_mapping({"name": "t", "base": base, "space": {"train.lr": {"low": 1e-3, "high": 1e-2}}})
    cfg = cfg.model_copy(update={"budget": cfg.budget.model_copy(update={"timeout": 3.0})})
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])  # warm: its first import takes seconds on a busy machine
    t0 = time.time()
    result = tune(cfg, options(tmp_path), data=splits)
    elapsed = time.time() - t0
    assert elapsed < 3.0 + 20.0  # one epoch, the final evaluation and the study files past the deadline
    trials = _load(tmp_path, result.study_name).trials
    assert len(trials) == 1  # the first trial ran to the deadline; no trial started after it
    trial = trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.user_attrs["stop_reason"] == STOP_REASON
    assert 1 <= trial.user_attrs[TRIAL.EPOCHS] < 100000 and trial.value is not None


def test_an_epoch_running_at_the_deadline_is_cut_there(tmp_path: Path, splits: Any) -> None:
    """One epoch of 10^6 steps (hours on this data): the trial still ends at the deadline, after a
    partial epoch that is evaluated like any other (long series on a CPU: one epoch of a GRU ran
    40 s past a 120 s study before the cut)."""
    train = {**TINY_BASE["train"], "max_epochs": 3, "steps_per_epoch": 10**6, "early_stopping": {"patience": None}}
    cfg = study_from_mapping({"name": "cut", "base": {**TINY_BASE, "train": train}, "space": {"train.lr": [1e-3]}})
    cfg = cfg.model_copy(update={"budget": cfg.budget.model_copy(update={"timeout": 2.0})})
    t0 = time.time()
    result = tune(cfg, options(tmp_path), data=splits)
    assert time.time() - t0 < 2.0 + 20.0  # a step, the evaluation and the study files past the deadline
    (trial,) = _load(tmp_path, result.study_name).trials
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.user_attrs["stop_reason"] == STOP_REASON
    assert trial.user_attrs[TRIAL.EPOCHS] == 1 and trial.value is not None


def test_queued_trials_share_the_time_left_and_the_deadline_stops_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from tunelab.train.callbacks import EpochReport, StopTraining
    from tunelab.tune.execution import deadline as mod

    clock = [100.0]
    monkeypatch.setattr(mod, "time", SimpleNamespace(time=lambda: clock[0]))
    waiting = [3]
    cb = mod.StudyDeadline(deadline=180.0, waiting=lambda: waiting[0])
    report = EpochReport(epoch=1, metrics={})
    ctx = SimpleNamespace(stop_at=None)
    cb.on_fit_start(ctx)  # type: ignore[arg-type]  (3 more queued: this one gets a quarter of 80 s)
    assert ctx.stop_at == 120.0  # the run knows when it will stop (its schedule anneals to it)
    clock[0] = 119.0
    cb.on_epoch_end(None, report)  # type: ignore[arg-type]
    clock[0] = 120.5
    with pytest.raises(StopTraining, match=mod.SHARE_REASON):
        cb.on_epoch_end(None, report)  # type: ignore[arg-type]
    waiting[0] = 0
    ctx.stop_at = None
    cb.on_fit_start(ctx)  # type: ignore[arg-type]  (nothing queued: the whole rest)
    assert ctx.stop_at == 180.0
    clock[0] = 179.0
    cb.on_epoch_end(None, report)  # type: ignore[arg-type]
    clock[0] = 181.0
    with pytest.raises(StopTraining, match=mod.STOP_REASON):
        cb.on_epoch_end(None, report)  # type: ignore[arg-type]


class _Overrun(BaseCallback):
    """The first epoch to end sleeps past the study's deadline (once)."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.slept = seconds, False

    def on_epoch_end(self, ctx: Any, report: Any) -> None:
        if not self.slept:
            self.slept = True
            time.sleep(self.seconds)


@pytest.mark.parametrize("overrun", [False, True])
def test_the_groups_of_a_packed_batch_share_the_time_and_none_starts_after_it(
    tmp_path: Path, splits: Any, overrun: bool
) -> None:
    """Two shape groups asked in one batch: the first stops at its share of the time ("time share"),
    the second gets the rest ("study timeout"); a group still waiting when the time is up is not
    trained (PRUNED, "not started")."""
    from tunelab.tune.execution.packs import NOT_STARTED

    base = {**TINY_BASE, "train": {**TINY_BASE["train"], "max_epochs": 100000, "early_stopping": {"patience": None}}}
    space = {"model.hidden_dim": [4, 8], "train.lr": {"low": 1e-3, "high": 1e-2}}
    cfg = study_from_mapping({"name": "g", "base": base, "space": space})
    cfg = cfg.model_copy(update={"budget": cfg.budget.model_copy(update={"timeout": 4.0})})
    queued = [{"model.hidden_dim": w, "train.lr": lr} for w in (4, 8) for lr in (1e-3, 2e-3)]
    callbacks = [_Overrun(5.0)] if overrun else []
    result = tune(cfg, options(tmp_path, pack_size=4, enqueue=queued), data=splits, callbacks=callbacks)
    trials = sorted(_load(tmp_path, result.study_name).trials, key=lambda t: t.number)[:4]
    first, second = trials[:2], trials[2:]
    assert {t.state for t in first} == {optuna.trial.TrialState.COMPLETE}
    if overrun:
        assert {t.user_attrs["stop_reason"] for t in first} == {STOP_REASON}
        assert {t.state for t in second} == {optuna.trial.TrialState.PRUNED}
        assert {t.user_attrs[TRIAL.REASON] for t in second} == {NOT_STARTED}
    else:
        assert {t.user_attrs["stop_reason"] for t in first} == {"time share"}
        assert {t.state for t in second} == {optuna.trial.TrialState.COMPLETE}
        assert {t.user_attrs["stop_reason"] for t in second} == {STOP_REASON}
    # every completed trial was stopped by the clock, and the study's summary says so
    complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in _load(tmp_path, result.study_name).trials)
    assert result.time_stopped == (complete, complete)
    note = time_stopped_note(*result.time_stopped)
    assert note is not None and f"  {note}" in best_summary(result)


def test_portfolio_runs_known_good_configurations_first_then_packs_a_few_shape_groups(
    tmp_path: Path, splits: Any
) -> None:
    base = {**BASE, "train": {**BASE["train"], "max_epochs": 1}}
    cfg = study_from_mapping({"name": "k", "base": base, "budget": {"n_trials": 16}})
    result = tune(cfg, options(tmp_path, portfolio=True, pack_size=8), data=splits)
    study = _load(tmp_path, result.study_name)
    trials = sorted(study.trials, key=lambda t: t.number)
    assert len(trials) == 16 and result.best_number is not None
    fams = portfolio_families("classification")
    assert [t.params["model.name"] for t in trials[:5]] == fams  # each family's paper settings first
    for trial, start in zip(trials, known_good(fams), strict=False):
        assert {k: trial.params[k] for k in start} == start
    assert study.user_attrs[STUDY.STUDY_CONFIG]["pruner"]["name"] == "hyperband"
    keys = {pack_key(_config(t)) for t in trials}
    assert len(keys) <= 12  # 2 groups for each conv family and the transformer, 4 for the GRU
    sizes = [t.user_attrs.get(TRIAL.PACK_SIZE, 1) for t in trials]
    assert max(sizes) > 1 and sum(s > 1 for s in sizes) >= 4, sizes


def _config(trial: optuna.trial.FrozenTrial) -> Any:
    from tunelab.config import validate_config

    return validate_config(trial.user_attrs[TRIAL.CONFIG], "trial")


TINY_DATA = [*GESTURES_CLI, "--epochs", "1", "--device", "cpu", "--no-report"]


@pytest.mark.parametrize(
    ("extra", "portfolio"),
    [([], True), (["--model", "gru"], False), (["model.name=fcn"], False)],
)
def test_tune_without_a_model_searches_theportfolio_for(tmp_path: Path, extra: list[str], portfolio: bool) -> None:
    args = ["tune", *TINY_DATA, *extra, "--timeout", "120", "--trials", "1", "--save-dir", str(tmp_path)]
    out = CliRunner().invoke(app, [*args, "--study-name", "s"])
    assert out.exit_code == 0, out.output
    assert "budget: 2 min or 1 trials (whichever ends first)" in out.output
    assert ("5 known configurations queued first" in out.output) is portfolio
    trial = _load(tmp_path, "s").trials[0]
    assert (trial.params.get("model.name") == "inception_time") is portfolio
