"""How a trial ends: complete, pruned, diverged, out of memory, a plugin error; what it records."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from tests.tune.conftest import TINY_BASE, options, tiny_study
from tunelab.errors import UserError
from tunelab.results.attrs import TRIAL
from tunelab.train import BaseCallback
from tunelab.tune import tune
from tunelab.tune.execution.objective import TrialCallback


def _study(result: Any) -> optuna.Study:
    return optuna.load_study(
        study_name=result.study_name, storage=f"sqlite:///{result.study_dir.parent / 'tunelab.db'}"
    )


class _RaiseAt(BaseCallback):
    """Raise ``exc`` at ``epoch`` of the trials in ``trials`` (counted by fit starts)."""

    def __init__(self, exc: BaseException, trials: set[int], epoch: int = 1) -> None:
        self.exc, self.trials, self.epoch, self.fits = exc, trials, epoch, -1

    def on_fit_start(self, ctx: Any) -> None:
        self.fits += 1

    def on_epoch_end(self, ctx: Any, report: Any) -> None:
        if self.fits in self.trials and report.epoch == self.epoch:
            raise self.exc


def test_complete_trials_record_every_attribute(tmp_path: Path, splits: Any) -> None:
    result = tune(tiny_study(), options(tmp_path), data=splits)
    study = _study(result)
    for t in study.trials:
        assert t.state.name == "COMPLETE"
        ua = t.user_attrs
        for key in (
            TRIAL.EPOCHS,
            TRIAL.BEST_EPOCH,
            TRIAL.MAX_EPOCHS,
            TRIAL.TRAIN_LOSS,
            TRIAL.VAL_LOSS,
            TRIAL.GAP,
            TRIAL.N_PARAMS,
            TRIAL.SECONDS,
            TRIAL.MODEL,
            TRIAL.RUN_DIR,
            TRIAL.METRICS,
            TRIAL.CONFIG,
        ):
            assert key in ua, key
        assert ua[TRIAL.EPOCHS] == 2 and ua[TRIAL.MODEL] == "gru" and ua[TRIAL.N_PARAMS] > 0
        assert ua[TRIAL.GAP] == pytest.approx(ua[TRIAL.VAL_LOSS] - ua[TRIAL.TRAIN_LOSS])
        assert t.value == ua[TRIAL.METRICS]["val_f1"] and "test_acc" in ua[TRIAL.METRICS]
        assert sorted(t.intermediate_values) == [1, 2]  # the objective metric per epoch
        run_dir = result.study_dir / ua[TRIAL.RUN_DIR]
        assert (
            run_dir.name.startswith(f"{t.number}-")
            and (run_dir / "config.json").is_file()
            and (run_dir / "best_model.pt").is_file()
        )
        assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2


def test_nan_loss_prunes_the_trial_as_diverged(tmp_path: Path, splits: Any) -> None:
    class NaNWeights(BaseCallback):
        fits = -1

        def on_fit_start(self, ctx: Any) -> None:
            self.fits += 1

        def on_epoch_end(self, ctx: Any, report: Any) -> None:
            if self.fits == 0 and report.epoch == 1:
                with torch.no_grad():
                    for p in ctx.model.parameters():
                        p.fill_(float("nan"))

    cfg = tiny_study(
        base={**tiny_study().base.model_dump(), "train": {"max_epochs": 3, "batch_size": 16, "schedule": "none"}}
    )
    result = tune(cfg, options(tmp_path), data=splits, callbacks=[NaNWeights()])
    first, second = _study(result).trials
    assert first.state.name == "PRUNED" and first.user_attrs[TRIAL.REASON] == "diverged at epoch 2"
    assert first.user_attrs[TRIAL.PRUNED_EPOCH] == 2 and first.user_attrs[TRIAL.EPOCHS] == 1
    assert second.state.name == "COMPLETE"
    rows = (result.study_dir / "trials.csv").read_text()
    assert "diverged at epoch 2" in rows


def test_out_of_memory_fails_the_trial_and_the_study_goes_on(tmp_path: Path, splits: Any) -> None:
    oom = _RaiseAt(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), {0})
    result = tune(tiny_study(budget={"n_trials": 2}), options(tmp_path), data=splits, callbacks=[oom])
    first, second = _study(result).trials
    assert first.state.name == "FAIL" and first.user_attrs[TRIAL.REASON] == "out of memory"
    assert TRIAL.TRACEBACK not in first.user_attrs
    assert second.state.name == "COMPLETE" and result.best_number == 1


def test_a_plugin_error_fails_the_trial_with_its_traceback(tmp_path: Path, splits: Any) -> None:
    boom = _RaiseAt(ZeroDivisionError("plugin bug"), {0}, epoch=2)
    result = tune(tiny_study(), options(tmp_path), data=splits, callbacks=[boom])
    first, second = _study(result).trials
    assert first.state.name == "FAIL" and first.user_attrs[TRIAL.REASON] == "error: ZeroDivisionError: plugin bug"
    assert "ZeroDivisionError" in first.user_attrs[TRIAL.TRACEBACK]
    saved = result.study_dir / first.user_attrs[TRIAL.RUN_DIR] / "traceback.txt"
    assert "raise self.exc" in saved.read_text()
    assert first.user_attrs[TRIAL.EPOCHS] == 2  # what it trained before failing
    assert second.state.name == "COMPLETE"


@pytest.mark.parametrize("where", ["begin", "complete"])
def test_an_interrupt_while_a_trial_begins_or_is_recorded_ends_it_interrupted(
    tmp_path: Path, splits: Any, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Ctrl+C outside the training itself (sampling and directories, or recording the result) still
    names the failed trial, so `--resume` and the report say why it stopped."""
    from tunelab.tune.execution.objective import Objective

    original = getattr(Objective, where)

    def interrupted_at_trial_1(self: Any, trial: optuna.Trial, *args: Any, **kw: Any) -> Any:
        if trial.number == 1:
            raise KeyboardInterrupt
        return original(self, trial, *args, **kw)

    monkeypatch.setattr(Objective, where, interrupted_at_trial_1)
    with pytest.raises(KeyboardInterrupt):
        tune(tiny_study(budget={"n_trials": 3}), options(tmp_path), data=splits)
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{tmp_path / 'tunelab.db'}")
    first, second = study.trials
    assert first.state.name == "COMPLETE"
    assert second.state.name == "FAIL" and second.user_attrs[TRIAL.REASON] == "interrupted"


def test_a_user_error_stops_the_study(tmp_path: Path, splits: Any) -> None:
    bad = _RaiseAt(UserError("data.path: file not found"), {0})
    with pytest.raises(UserError, match="file not found"):
        tune(tiny_study(budget={"n_trials": 3}), options(tmp_path), data=splits, callbacks=[bad])


def test_consecutive_failures_stop_the_study(tmp_path: Path, splits: Any) -> None:
    always = _RaiseAt(RuntimeError("broken plugin"), set(range(10)))
    with pytest.raises(UserError, match="2 trials failed in a row"):
        tune(
            tiny_study(budget={"n_trials": 5, "max_failures_in_a_row": 2}),
            options(tmp_path),
            data=splits,
            callbacks=[always],
        )
    assert len(list((tmp_path).glob("t-*/trials.csv"))) == 1


def test_invalid_sampled_configs_fail_with_the_reason(tmp_path: Path, splits: Any) -> None:
    # 3 heads cannot split a width of 8: a clash between two fields, found when a trial samples it
    base = {**TINY_BASE, "model": {"name": "transformer", "d_model": 8, "ff_dim": 8, "num_layers": 1}}
    cfg = tiny_study(base=base, space={"model.num_heads": [2, 3]}, sampler="grid", budget={"n_trials": 2})
    result = tune(cfg, options(tmp_path), data=splits)
    states = {t.params["model.num_heads"]: t for t in _study(result).trials}
    assert states[3].state.name == "FAIL" and states[3].user_attrs[TRIAL.REASON].startswith(
        "invalid config: sampled config: model: model.num_heads=3 must divide model.d_model=8"
    )
    assert states[2].state.name == "COMPLETE"


@pytest.mark.parametrize(
    ("space", "match"),
    [
        ({"model.dropout": [0.0, 1.5]}, "model.dropout: the choice 1.5 is never valid .*less than 1"),
        ({"model.hidden_dim": {"low": 0, "high": 8}}, "model.hidden_dim: the range end 0 is never valid"),
        ({"train.batch_size": [16, "big"]}, "train.batch_size: the choice 'big' is never valid"),
        (
            {"data.name": ["japanese_vowels", "japanese_vowel"]},
            "data.name: the choice 'japanese_vowel' .*unknown dataset",
        ),
    ],
)
def test_a_value_no_trial_could_use_is_refused_before_the_study(tmp_path: Path, splits: Any, space, match) -> None:
    with pytest.raises(UserError, match=match):
        tune(tiny_study(space=space), options(tmp_path), data=splits)
    assert not any(tmp_path.iterdir())


def test_open_range_ends_and_cross_field_values_are_accepted(tmp_path: Path) -> None:
    from tunelab.tune.space import build_space

    # dropout < 1: a continuous range never samples 1.0 itself; heads 3 suit a d_model of 12
    space = {"model.dropout": {"low": 0.0, "high": 1.0}, "model.num_heads": [2, 3], "model.d_model": [8, 12]}
    study = tiny_study(families=["transformer", "gru"], space=space)
    build_space(study).check_values("study")


class _PruneFrom(optuna.pruners.BasePruner):
    def __init__(self, step: int) -> None:
        self.step = step

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return (trial.last_step or 0) >= self.step


def test_the_trial_callback_reports_each_epoch_and_prunes() -> None:
    from tunelab.train.callbacks import EpochReport

    study = optuna.create_study(direction="maximize", pruner=_PruneFrom(3))
    trial = study.ask()
    cb = TrialCallback(trial, "val_f1")
    cb.on_epoch_end(None, EpochReport(1, {"val_f1": 0.5, "train_loss": 1.0, "val_loss": 1.2}, improved=True))  # type: ignore[arg-type]
    cb.on_epoch_end(None, EpochReport(2, {"val_f1": math.nan}))  # type: ignore[arg-type]
    with pytest.raises(optuna.TrialPruned, match="pruned at epoch 3"):
        cb.on_epoch_end(None, EpochReport(3, {"val_f1": 0.6, "train_loss": 0.9, "val_loss": 1.3}))  # type: ignore[arg-type]
    assert study.trials[0].intermediate_values == {1: 0.5, 3: 0.6} and cb.pruned_epoch == 3
    cb.record_partial()
    attrs = study.trials[0].user_attrs
    assert attrs[TRIAL.EPOCHS] == 3 and attrs[TRIAL.BEST_EPOCH] == 1 and attrs[TRIAL.GAP] == pytest.approx(0.2)


def test_a_study_given_its_splits_scores_its_ensemble_on_them(
    tmp_path: Path, splits: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tunelab.tune(..., data=splits)`: the trials never saw the data of their saved config, so the
    study's ensemble must be scored on the splits it was given, not on data prepared again."""
    import json

    from tunelab import ensemble
    from tunelab.ensemble import mean_probabilities
    from tunelab.train.checkpoint import load_model
    from tunelab.train.trainer import predict

    monkeypatch.setattr(ensemble, "ENABLED", True)
    result = tune(tiny_study(budget={"n_trials": 3}), options(tmp_path, ensemble=3), data=splits)
    assert result.ensemble is not None
    folder = result.study_dir / "ensemble"
    members = json.loads((folder / "ensemble.json").read_text())["members"]
    logits = [predict(load_model(folder / m["checkpoint"], splits.meta)[0], splits.test) for m in members]
    probs = mean_probabilities(logits, [m["temperature"] for m in members])
    assert result.ensemble["test_acc"] == pytest.approx(float((probs.argmax(-1) == splits.test.y).float().mean()))
