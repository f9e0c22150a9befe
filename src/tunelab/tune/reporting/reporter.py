"""What a study reports: the header before it runs (:class:`TuneStart`), each trial as it ends
(:class:`Reporter`), and what it found (:class:`TuneResult`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tunelab.results.attrs import STUDY, TRIAL
from tunelab.results.study import best_trial, time_stopped
from tunelab.tune.reporting.report import trial_line

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

__all__ = ["LogReporter", "Reporter", "TuneResult", "TuneStart", "study_result"]

log = logging.getLogger(__name__)


@dataclass
class TuneStart:
    """What is about to run (for the console header and progress bar)."""

    study_name: str
    storage: str  # masked
    study_dir: Path
    n_trials: int | None
    timeout: float | None
    objectives: list[str]
    directions: list[str]
    sampler: str
    pruner: str
    phase: str | None
    fixed: dict[str, Any]
    grid: str | None
    grid_size: int | None
    space_size: int | None
    n_params: int
    n_existing: int
    n_enqueued: int
    workers: int
    resumed: bool
    defaults: str = ""  # the data-aware defaults line (tunelab.budget)
    budget: str = ""  # "budget: 10 min (default; --timeout to change)"
    pack_size: int | str = 1  # trials trained at once (tunelab.tune.execution.packs)
    reference: bool = False  # the MiniRocket reference is fitted before the first trial


@dataclass
class TuneResult:
    """What a study found."""

    study_name: str
    study_dir: Path
    storage: str  # masked
    objectives: list[str]
    directions: list[str]
    states: dict[str, int]
    best_number: int | None = None
    best_values: list[float] | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_config: dict[str, Any] | None = None
    best_n_params: int | None = None
    best_epochs: int | None = None
    best_model: str | None = None
    pareto: list[dict[str, Any]] = field(default_factory=list)
    family: str | None = None
    reference: dict[str, Any] | None = None  # MiniRocket on the same split (classification studies)
    ensemble: dict[str, Any] | None = None  # the K best trials' mean, built as the study ended (tunelab.ensemble)
    time_stopped: tuple[int, int] = (0, 0)  # (completed trials the time budget stopped, completed trials)

    @property
    def best_value(self) -> float | None:
        return self.best_values[0] if self.best_values else None


class Reporter(Protocol):
    """Receives a study's progress (the CLI draws it; :class:`LogReporter` logs it)."""

    def start(self, info: TuneStart) -> None: ...

    def trial(self, study: optuna.Study, trial: FrozenTrial) -> None: ...

    def end(self, result: TuneResult) -> None: ...


class LogReporter:
    """Logs Optuna-style lines through ``logging`` (the library default)."""

    def __init__(self) -> None:
        self.objectives: list[str] = []
        self.pruner = ""

    def start(self, info: TuneStart) -> None:
        self.objectives, self.pruner = info.objectives, info.pruner
        log.info("study %s (%s): %s trials", info.study_name, info.storage, info.n_trials)

    def trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        best = best_trial(study) if len(self.objectives) == 1 else None
        log.info("%s", trial_line(trial, self.objectives, best, self.pruner))

    def end(self, result: TuneResult) -> None:
        log.info("study %s: best trial %s", result.study_name, result.best_number)


def study_result(
    study: optuna.Study, study_dir: Path, shown: str, objectives: list[str], family: str | None
) -> TuneResult:
    best = best_trial(study)
    trials = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    result = TuneResult(
        study.study_name,
        study_dir,
        shown,
        objectives,
        [d.name.lower() for d in study.directions],
        states,
        family=family,
        reference=study.user_attrs.get(STUDY.REFERENCE),
        time_stopped=time_stopped(trials),
    )
    if best is not None:
        fixed = study.user_attrs.get(STUDY.FIXED_PARAMS) or {}
        result.best_number, result.best_values = best.number, list(best.values)
        result.best_params = {**fixed, **best.params}
        result.best_metrics = dict(best.user_attrs.get(TRIAL.METRICS) or {})
        result.best_config = best.user_attrs.get(TRIAL.CONFIG)
        result.best_n_params = best.user_attrs.get(TRIAL.N_PARAMS)
        result.best_epochs = best.user_attrs.get(TRIAL.EPOCHS)
        if (study_dir / "best_model.pt").is_file():
            result.best_model = str(study_dir / "best_model.pt")
    if len(objectives) > 1 and best is not None:
        result.pareto = [{"number": t.number, "values": list(t.values), "params": t.params} for t in study.best_trials]
    return result
