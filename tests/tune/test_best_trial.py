"""Which trial is "best": the objective first, then the validation loss among ties, then the earlier trial."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

from tunelab.results.attrs import TRIAL
from tunelab.results.study import best_trial


def _study(direction: str, rows: list[tuple[float, float | None]]) -> optuna.Study:
    study = optuna.create_study(direction=direction)
    for value, val_loss in rows:
        attrs = {TRIAL.VAL_LOSS: val_loss} if val_loss is not None else {}
        study.add_trial(
            create_trial(
                value=value,
                params={"x": 0.5},
                distributions={"x": FloatDistribution(0, 1)},
                user_attrs=attrs,
            )
        )
    return study


def test_ties_on_the_objective_go_to_the_lower_validation_loss() -> None:
    # three trials reach val_f1 1.0 on a small validation split: the least confident one is not the best
    study = _study("maximize", [(0.9, 0.01), (1.0, 0.30), (1.0, 0.20), (1.0, 0.25)])
    assert study.best_trial.number == 1  # Optuna's: the first of the tie
    best = best_trial(study)
    assert best is not None and best.number == 2


def test_a_strictly_better_value_wins_whatever_its_loss_and_unscored_ties_keep_the_first() -> None:
    study = _study("minimize", [(0.5, 0.01), (0.4, 0.90)])
    best = best_trial(study)
    assert best is not None and best.number == 1
    study = _study("maximize", [(0.8, None), (0.8, None)])
    best = best_trial(study)
    assert best is not None and best.number == 0
