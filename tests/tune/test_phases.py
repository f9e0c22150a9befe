"""Phases chain: each phase's best values are fixed in the next, from a file or from the storage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest

from tests.tune.conftest import options, tiny_study
from tunelab.errors import UserError
from tunelab.results.attrs import STUDY, TRIAL
from tunelab.tune import tune

PHASES = {
    "space": {
        "train.lr": {"low": 1e-3, "high": 3e-2, "log": True},
        "model.hidden_dim": [4, 8],
        "model.dropout": {"low": 0.0, "high": 0.3},
    },
    "phases": {"coarse": ["train.lr"], "arch": ["model.hidden_dim"], "reg": ["model.dropout"]},
}


def _trials(result: Any) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(
        study_name=result.study_name, storage=f"sqlite:///{Path(result.study_dir).parents[1] / 'tunelab.db'}"
    )
    return study.trials


def test_phases_chain_through_best_params_files(tmp_path: Path, splits: Any) -> None:
    cfg = tiny_study(**PHASES)
    one = tune(cfg, options(tmp_path, phase="coarse"), data=splits)
    assert one.study_name.endswith("/coarse") and one.study_dir.parent.name.startswith("t-")
    file_one = one.study_dir / "best_params.json"
    assert set(json.loads(file_one.read_text())) == {"train.lr"}

    two = tune(cfg, options(tmp_path, phase="arch", best_params=file_one), data=splits)
    lr = one.best_params["train.lr"]
    for t in _trials(two):
        assert set(t.params) == {"model.hidden_dim"} and t.user_attrs[TRIAL.CONFIG]["train"]["lr"] == lr
    chained = json.loads((two.study_dir / "best_params.json").read_text())
    assert chained == {
        "train.lr": lr,
        "model.hidden_dim": two.best_params["model.hidden_dim"],
    }  # carries phase one forward

    three = tune(cfg, options(tmp_path, phase="reg", best_params=two.study_dir / "best_params.json"), data=splits)
    for t in _trials(three):
        c = t.user_attrs[TRIAL.CONFIG]
        assert (
            set(t.params) == {"model.dropout"}
            and c["train"]["lr"] == lr
            and c["model"]["hidden_dim"] == chained["model.hidden_dim"]
        )


def test_a_phase_finds_the_previous_phase_in_the_storage(tmp_path: Path, splits: Any) -> None:
    cfg = tiny_study(**PHASES)
    one = tune(cfg, options(tmp_path, phase="coarse"), data=splits)
    two = tune(cfg, options(tmp_path, phase="arch"), data=splits)
    head = one.study_name.rpartition("/")[0]
    assert two.study_name == f"{head}/arch"  # grouped under the first phase's study
    lr = one.best_params["train.lr"]
    assert all(t.user_attrs[TRIAL.CONFIG]["train"]["lr"] == lr for t in _trials(two))
    three = tune(cfg, options(tmp_path, phase="reg"), data=splits)
    assert three.study_name == f"{head}/reg"
    study = optuna.load_study(study_name=three.study_name, storage=f"sqlite:///{tmp_path / 'tunelab.db'}")
    assert study.user_attrs[STUDY.FIXED_PARAMS] == {
        "train.lr": lr,
        "model.hidden_dim": two.best_params["model.hidden_dim"],
    }
    assert study.user_attrs[STUDY.PHASE] == "reg"


def test_explicit_study_names_chain_too(tmp_path: Path, splits: Any) -> None:
    cfg = tiny_study(**PHASES)
    one = tune(cfg, options(tmp_path, phase="coarse", study_name="cricket"), data=splits)
    two = tune(cfg, options(tmp_path, phase="arch", study_name="cricket"), data=splits)
    assert (one.study_name, two.study_name) == ("cricket/coarse", "cricket/arch")
    assert all(t.user_attrs[TRIAL.CONFIG]["train"]["lr"] == one.best_params["train.lr"] for t in _trials(two))


def test_best_params_with_unknown_keys_are_refused(tmp_path: Path, splits: Any) -> None:
    bad = tmp_path / "best_params.json"
    bad.write_text(json.dumps({"train.lrr": 0.01}))
    with pytest.raises(UserError, match="unknown parameter 'train.lrr' \\(did you mean 'train.lr'\\?\\)"):
        tune(tiny_study(**PHASES), options(tmp_path, phase="arch", best_params=bad), data=splits)
    with pytest.raises(UserError, match="file not found"):
        tune(tiny_study(**PHASES), options(tmp_path, phase="arch", best_params=tmp_path / "nope.json"), data=splits)
