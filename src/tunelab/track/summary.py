"""A study's outcome as plain data, for trackers' study-level views.

Extract once (from an Optuna study), render per tracker: MLflow logs it on the parent run, W&B as
tables and charts on a summary run, TensorBoard as scalars over trial numbers.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from tunelab.results.attrs import TRIAL

if TYPE_CHECKING:
    import optuna

__all__ = ["StudySummary", "TrialRow", "summarize_study"]

log = logging.getLogger(__name__)


@dataclass
class TrialRow:
    """One trial, as the optimization history shows it."""

    number: int
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    value: float | None  # the first objective (None unless complete)
    best_value: float | None  # best complete value up to and including this trial
    params: dict[str, Any] = field(default_factory=dict)
    epochs: int | None = None


@dataclass
class StudySummary:
    """What a study found, ready to log."""

    name: str
    directions: list[str]
    trials: list[TrialRow]
    importances: dict[str, float] = field(default_factory=dict)  # param -> share of variance, sums to ~1
    best_number: int | None = None
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)

    @property
    def states(self) -> dict[str, int]:
        """Trial count per state."""
        counts: dict[str, int] = {}
        for t in self.trials:
            counts[t.state] = counts.get(t.state, 0) + 1
        return counts

    @property
    def param_names(self) -> list[str]:
        """Every parameter any trial sampled, in first-seen order."""
        names: dict[str, None] = {}
        for t in self.trials:
            names |= dict.fromkeys(t.params)
        return list(names)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self) | {"states": self.states}


def summarize_study(study: optuna.Study, importances: dict[str, float] | None = None) -> StudySummary:
    """Summarize ``study`` on its first objective.  Importances are computed with Optuna's default
    evaluator unless given (e.g. already computed by ``analysis/``); they are empty when fewer than
    two trials completed."""
    import optuna

    directions = [d.name.lower() for d in study.directions]
    sign = -1.0 if directions[0] == "maximize" else 1.0
    rows: list[TrialRow] = []
    best: float | None = None
    best_number: int | None = None
    for t in study.get_trials(deepcopy=False):
        value = t.values[0] if t.state == optuna.trial.TrialState.COMPLETE and t.values else None
        if value is not None and math.isfinite(value) and (best is None or sign * value < sign * best):
            best, best_number = value, t.number
        epochs = t.user_attrs.get(TRIAL.EPOCHS)
        rows.append(
            TrialRow(t.number, t.state.name, value, best, dict(t.params), epochs if isinstance(epochs, int) else None)
        )
    if importances is None:
        importances = _importances(study)
    best_params = next((r.params for r in rows if r.number == best_number), {})
    return StudySummary(study.study_name, directions, rows, importances, best_number, best, best_params)


def _importances(study: optuna.Study) -> dict[str, float]:
    import optuna

    complete = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)) if t.params]
    if len(complete) < 2:
        return {}
    try:
        raw = optuna.importance.get_param_importances(
            study, target=(lambda t: t.values[0]) if len(study.directions) > 1 else None
        )
    except (RuntimeError, ValueError) as exc:  # e.g. every trial sampled the same values
        log.info("parameter importances unavailable: %s", exc)
        return {}
    return {k: float(v) for k, v in raw.items()}
