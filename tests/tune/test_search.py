"""Every sampler and pruner runs a study."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from tests.tune.conftest import options, tiny_study
from tunelab.results.attrs import TRIAL
from tunelab.tune import tune


def _study(result: Any) -> optuna.Study:
    return optuna.load_study(
        study_name=result.study_name, storage=f"sqlite:///{result.study_dir.parent / 'tunelab.db'}"
    )


@pytest.mark.parametrize("sampler", ["tpe", "random", "grid", "cmaes", "gp", "qmc", "nsga2"])
def test_each_sampler_runs(tmp_path: Path, splits: Any, sampler: str) -> None:
    space = {"train.lr": [0.003, 0.01]} if sampler == "grid" else {"train.lr": {"low": 1e-3, "high": 3e-2, "log": True}}
    result = tune(tiny_study(space=space, sampler=sampler), options(tmp_path), data=splits)
    trials = _study(result).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    if sampler == "grid":
        assert sorted(t.params["train.lr"] for t in trials) == [0.003, 0.01]


@pytest.mark.parametrize("pruner", ["median", "percentile", "asha", "hyperband", "none"])
def test_each_pruner_runs(tmp_path: Path, splits: Any, pruner: str) -> None:
    """A good config first, then one that cannot learn (lr 1e-7): every pruner but 'none' stops it."""
    opts: dict[str, Any] = {
        "median": {"n_startup_trials": 1, "n_warmup_steps": 0},
        "percentile": {"percentile": 50.0, "n_startup_trials": 1, "n_warmup_steps": 0},
        "asha": {"min_resource": 1, "reduction_factor": 2},
        "hyperband": {"min_resource": 1, "max_resource": 3, "reduction_factor": 2},
        "none": {},
    }[pruner]
    base = {**tiny_study().base.model_dump(), "train": {"max_epochs": 3, "batch_size": 16, "schedule": "none"}}
    cfg = tiny_study(
        base=base, space={"train.lr": [0.03, 1e-7]}, pruner={"name": pruner, "options": opts}, budget={"n_trials": 3}
    )
    result = tune(
        cfg, options(tmp_path, enqueue=[{"train.lr": 0.03}, {"train.lr": 0.03}, {"train.lr": 1e-7}]), data=splits
    )
    trials = _study(result).trials
    assert trials[0].state.name == "COMPLETE"
    if pruner == "none":
        assert all(t.state.name == "COMPLETE" for t in trials)
    elif pruner in ("median", "percentile", "asha"):
        bad = trials[2]
        assert bad.params["train.lr"] == 1e-7 and bad.state.name == "PRUNED"
        assert bad.user_attrs[TRIAL.REASON] == f"pruned at epoch {bad.user_attrs[TRIAL.PRUNED_EPOCH]}"
    else:  # hyperband puts trials in brackets by number: the bad one may race alone
        assert all(t.state.name in ("COMPLETE", "PRUNED") and t.intermediate_values for t in trials)
