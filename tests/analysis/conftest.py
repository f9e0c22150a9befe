"""Small real Optuna studies in sqlite files, built trial by trial with known numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from tunelab.results.attrs import STUDY, TRIAL

optuna.logging.set_verbosity(optuna.logging.WARNING)

DISTS = {
    "train.lr": FloatDistribution(1e-4, 1e-1, log=True),
    "model.hidden_dim": IntDistribution(32, 128, step=32),
    "model.name": CategoricalDistribution(["gru", "lstm"]),
    "train.dropout": FloatDistribution(0.0, 0.5),
}

# (lr, hidden, name, dropout, val_f1, train_loss, val_loss, epochs, best_epoch)
COMPLETE = [
    (1e-3, 64, "gru", 0.1, 0.80, 0.30, 0.40, 10, 9),
    (3e-3, 128, "gru", 0.2, 0.85, 0.20, 0.35, 7, 5),
    (1e-2, 32, "lstm", 0.0, 0.60, 0.10, 0.50, 10, 10),
    (3e-4, 96, "lstm", 0.3, 0.70, 0.40, 0.42, 6, 4),
    (5e-2, 64, "gru", 0.4, 0.55, 0.05, 0.60, 10, 8),
    (2e-3, 128, "lstm", 0.1, 0.75, 0.25, 0.33, 8, 6),
    (1e-4, 32, "gru", 0.5, 0.50, 0.50, 0.52, 10, 10),
    (5e-3, 96, "gru", 0.2, 0.90, 0.22, 0.30, 9, 7),
]
MAX_EPOCHS = 10


def _params(lr: float, hidden: int, name: str, dropout: float) -> dict[str, Any]:
    return {"train.lr": lr, "model.hidden_dim": hidden, "model.name": name, "train.dropout": dropout}


def _curve(final: float, epochs: int) -> dict[int, float]:
    return {e: final * e / epochs for e in range(1, epochs + 1)}


def new_study(
    path: Path, name: str, directions: list[str], objectives: list[str], n_trials: int | None = 20
) -> optuna.Study:
    storage = f"sqlite:///{path}"
    study = optuna.create_study(study_name=name, storage=storage, directions=directions)
    study.set_user_attr(STUDY.OBJECTIVES, objectives)
    study.set_user_attr(STUDY.DIRECTIONS, directions)
    study.set_user_attr(STUDY.PHASE, "coarse")
    study.set_user_attr(STUDY.STUDY_CONFIG, {"n_trials": n_trials} if n_trials else {})
    return study


def add_complete(
    study: optuna.Study,
    row: tuple,
    values: list[float] | None = None,
    run_dir: str | None = None,
    stop_reason: str | None = None,
) -> None:
    lr, hidden, name, dropout, f1, tl, vl, epochs, best = row
    attrs = {TRIAL.EPOCHS: epochs, TRIAL.BEST_EPOCH: best, TRIAL.MAX_EPOCHS: MAX_EPOCHS, TRIAL.TRAIN_LOSS: tl,
             TRIAL.VAL_LOSS: vl, TRIAL.GAP: vl - tl, TRIAL.N_PARAMS: hidden * 100, TRIAL.SECONDS: 1.5, TRIAL.MODEL: name}  # fmt: skip
    if run_dir:
        attrs[TRIAL.RUN_DIR] = run_dir
    if stop_reason:
        attrs[TRIAL.STOP_REASON] = stop_reason
    study.add_trial(create_trial(params=_params(lr, hidden, name, dropout), distributions=DISTS,
                                 values=values or [f1], user_attrs=attrs, intermediate_values=_curve(f1, epochs)))  # fmt: skip


def add_pruned(study: optuna.Study, epoch: int, name: str = "lstm") -> None:
    study.add_trial(create_trial(state=TrialState.PRUNED, params=_params(1e-4, 32, name, 0.0), distributions=DISTS,
                                 user_attrs={TRIAL.PRUNED_EPOCH: epoch, TRIAL.MAX_EPOCHS: MAX_EPOCHS, TRIAL.MODEL: name,
                                             TRIAL.REASON: f"pruned at epoch {epoch}"},
                                 intermediate_values=_curve(0.2, epoch)))  # fmt: skip


def add_failed(study: optuna.Study, reason: str = "out of memory") -> None:
    study.add_trial(create_trial(state=TrialState.FAIL, params=_params(1e-1, 128, "gru", 0.0), distributions=DISTS,
                                 user_attrs={TRIAL.REASON: reason, TRIAL.MODEL: "gru"}))  # fmt: skip


def add_running(study: optuna.Study, epochs: int = 3) -> None:
    study.add_trial(create_trial(state=TrialState.RUNNING, params=_params(1e-3, 64, "gru", 0.1), distributions=DISTS,
                                 user_attrs={TRIAL.MODEL: "gru", TRIAL.MAX_EPOCHS: MAX_EPOCHS}, intermediate_values=_curve(0.7, epochs)))  # fmt: skip


def write_study_dir(root: Path, storage: str, name: str) -> Path:
    d = root / "runs" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "study.json").write_text(json.dumps({"storage": storage, "study_name": name}))
    return d


def build_single(root: Path) -> tuple[optuna.Study, Path]:
    """8 completed, 2 pruned, 1 failed, 1 running trial; maximise val_f1; study dir with metrics.jsonl."""
    db = root / "t.db"
    study = new_study(db, "single", ["maximize"], ["val_f1"])
    sdir = write_study_dir(root, f"sqlite:///{db}", "single")
    for i, row in enumerate(COMPLETE):
        run = f"trials/{i}-000000"
        (sdir / run).mkdir(parents=True)
        lines = [json.dumps({"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e}) for e in range(1, row[7] + 1)]
        (sdir / run / "metrics.jsonl").write_text("\n".join(lines) + "\n{cut")  # a killed run's cut last line
        add_complete(study, row, run_dir=run)
    add_pruned(study, 2)
    add_pruned(study, 3)
    add_failed(study)
    add_running(study)
    return study, sdir


@pytest.fixture
def single(tmp_path: Path) -> tuple[optuna.Study, Path]:
    return build_single(tmp_path)


@pytest.fixture
def multi(tmp_path: Path) -> optuna.Study:
    """Two objectives: maximise val_f1, minimise n_params."""
    study = new_study(tmp_path / "m.db", "multi", ["maximize", "minimize"], ["val_f1", "n_params"])
    for row in COMPLETE:
        add_complete(study, row, values=[row[4], float(row[1] * 100)])
    add_pruned(study, 2)
    return study
