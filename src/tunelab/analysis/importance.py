"""Hyperparameter importance through Optuna's evaluators (fANOVA by default, PED-ANOVA on request).

Optuna fails or returns meaningless shares on degenerate input (one trial, a constant objective, a
parameter that never varied), so those cases are filtered first and reported in plain words.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import optuna
import pandas as pd
from optuna.search_space import intersection_search_space
from optuna.trial import FrozenTrial, TrialState

from tunelab.analysis.frame import TrialTable
from tunelab.errors import UserError

__all__ = ["EVALUATORS", "Importance", "make_evaluator", "param_importance"]

log = logging.getLogger(__name__)

EVALUATORS = ("fanova", "ped_anova", "mdi")


@dataclass
class Importance:
    """Normalised importance per objective: ``values[objective][param]`` (each objective sums to 1)."""

    evaluator: str
    values: dict[str, dict[str, float]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # param -> why it was left out
    message: str | None = None

    def ranked(self, objective: str | None = None) -> list[str]:
        """Parameters, most important first (first objective unless named)."""
        if not self.values:
            return []
        scores = self.values[objective] if objective else next(iter(self.values.values()))
        return sorted(scores, key=lambda p: -scores[p])

    def frame(self) -> pd.DataFrame:
        rows = [
            {"objective": o, "param": p, "importance": v}
            for o, scores in self.values.items()
            for p, v in scores.items()
        ]
        return pd.DataFrame(rows, columns=["objective", "param", "importance"])


def make_evaluator(name: str, seed: int = 0) -> optuna.importance.BaseImportanceEvaluator:
    """The Optuna evaluator called ``name`` (one of :data:`EVALUATORS`), seeded for repeatable numbers."""
    if name == "fanova":
        return optuna.importance.FanovaImportanceEvaluator(seed=seed)
    if name == "ped_anova":
        return optuna.importance.PedAnovaImportanceEvaluator()
    if name == "mdi":
        return optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=seed)
    raise UserError(f"--importance {name}: unknown evaluator; choose one of {', '.join(EVALUATORS)}")


def param_importance(study: optuna.Study, table: TrialTable, evaluator: str = "fanova", seed: int = 0) -> Importance:
    """Importance of each parameter for each objective, over the completed trials.

    Parameters sampled in only some trials (conditional ones) and parameters that took a single
    value are listed in ``skipped`` with the reason; fewer than 2 completed trials or an objective
    that never changed give an empty result and a ``message``.
    """
    make_evaluator(evaluator, seed)  # fail fast on a bad name
    result = Importance(evaluator=evaluator)
    done = table.complete
    if len(done) < 2:
        result.message = f"importance needs at least 2 completed trials ({len(done)} so far)."
        return result
    trials = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.number in set(done["number"])
    ]
    shared = intersection_search_space(trials)
    for p in table.params:
        if p in table.named:
            result.skipped[p] = "named, not sampled: compare the groups in the impact table"
        elif p not in shared:
            result.skipped[p] = "not sampled in every completed trial (conditional or changed range)"
        elif done[p].nunique(dropna=True) < 2:
            result.skipped[p] = f"took one value only ({done[p].iloc[0]!r})"
    params = [p for p in table.params if p not in result.skipped]
    if not params and table.named:
        result.message = (
            f"an experiment set samples no parameter: the {', '.join(table.named)} impact table compares them."
        )
        return result
    if not params:
        result.message = "no parameter varied across the completed trials: importance is undefined."
        return result
    for i, (col, name) in enumerate(zip(table.value_cols, table.info.objectives, strict=True)):
        if done[col].astype(float).nunique() < 2:
            result.values[name] = dict.fromkeys(params, 0.0)
            result.message = (
                f"{name} took the same value in every completed trial: no parameter explains any variation."
            )
            continue
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings(
                    "ignore", message=".*achieve low `target` values"
                )  # handled: _nth_value flips the sign
                scores = optuna.importance.get_param_importances(
                    study,
                    evaluator=make_evaluator(evaluator, seed),
                    params=params,
                    target=_nth_value(i, table.info.directions[i]),
                )
        except (RuntimeError, ValueError) as exc:  # degenerate data Optuna refuses
            log.warning("importance for %s not computed: %s", name, exc)
            result.message = f"importance for {name} not computed: {exc}"
            continue
        clean = {p: (0.0 if math.isnan(float(v)) else float(v)) for p, v in scores.items()}
        result.values[name] = dict(sorted(clean.items(), key=lambda kv: -kv[1]))
    return result


def _nth_value(i: int, direction: str) -> Callable[[FrozenTrial], float]:
    """Objective ``i`` as a value to minimise: PED-ANOVA explains what reaches *low* targets
    (fANOVA and MDI are unchanged by the sign)."""
    sign = -1.0 if direction == "maximize" else 1.0

    def target(t: FrozenTrial) -> float:
        return sign * float(t.values[i])

    return target
