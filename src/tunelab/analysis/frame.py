"""Every trial of a study as one row of a DataFrame: the base of every table in ``analysis/``.

Reading the study once into plain columns keeps the extraction functions small, testable without
Optuna objects, and identical for a finished study and one that is still running.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from tunelab.analysis.source import StudyInfo, study_info
from tunelab.results.attrs import TRIAL

__all__ = ["CATEGORICAL", "NUMERIC", "TrialTable", "trial_table"]

CATEGORICAL = "categorical"
NUMERIC = "numeric"


@dataclass
class TrialTable:
    """One row per trial.

    Columns: ``number``, ``state`` (COMPLETE/PRUNED/FAIL/RUNNING/WAITING), the objective column(s)
    (``value`` for one objective, ``value_0``, ``value_1``, ... for several), one column per
    parameter (dotted config path, NaN where a conditional parameter was not sampled), and
    ``epochs``, ``max_epochs``, ``best_epoch``, ``train_loss``, ``val_loss``, ``gap``, ``n_params``,
    ``seconds``, ``model``, ``reason``, ``pruned_epoch``, ``last_step``, ``last_intermediate``,
    ``n_intermediate``, ``start``, ``complete``, ``run_dir``.
    """

    df: pd.DataFrame
    info: StudyInfo
    params: list[str]
    kinds: dict[str, str]  # param -> "categorical" | "numeric"
    log_scale: dict[str, bool] = field(default_factory=dict)
    named: list[str] = field(default_factory=list)  # params read from user attrs (an experiment set's names)

    @property
    def sampled(self) -> list[str]:
        """The parameters Optuna sampled (what its importance and plots know about)."""
        return [p for p in self.params if p not in self.named]

    @property
    def value_cols(self) -> list[str]:
        n = len(self.info.directions)
        return ["value"] if n == 1 else [f"value_{i}" for i in range(n)]

    @property
    def primary(self) -> str:
        """The column of the first objective (what top-k, impact and importance rank by)."""
        return self.value_cols[0]

    @property
    def maximize(self) -> bool:
        return self.info.directions[0] == "maximize"

    def state(self, *states: str) -> pd.DataFrame:
        return self.df[self.df["state"].isin(states)]

    @property
    def complete(self) -> pd.DataFrame:
        """Completed trials with a finite primary value."""
        done = self.state("COMPLETE")
        return done[np.isfinite(done[self.primary].astype(float))] if len(done) else done

    def objective_label(self, col: str | None = None) -> str:
        col = col or self.primary
        return self.info.objectives[self.value_cols.index(col)]


EXPERIMENT = "experiment"  # the trial user attr naming an experiment set's experiment (tunelab.experiments)


def trial_table(study: optuna.Study, info: StudyInfo | None = None) -> TrialTable:
    """Read every trial of ``study`` (any state) into a :class:`TrialTable`."""
    info = info or study_info(study)
    trials = study.get_trials(deepcopy=False)
    kinds: dict[str, str] = {}
    log_scale: dict[str, bool] = {}
    for t in trials:
        for name, dist in t.distributions.items():
            if name not in kinds:
                kinds[name], log_scale[name] = _kind(dist)
    params = sorted(kinds)
    named: list[str] = []
    if EXPERIMENT not in kinds and any(EXPERIMENT in t.user_attrs for t in trials):
        # an experiment set's trials sample nothing: what varies is the experiment they ran
        kinds[EXPERIMENT], log_scale[EXPERIMENT], named = CATEGORICAL, False, [EXPERIMENT]
        params = [EXPERIMENT, *params]
    rows = [_row(t, len(info.directions), params, kinds) for t in trials]
    columns = ["number", "state"] + (
        ["value"] if len(info.directions) == 1 else [f"value_{i}" for i in range(len(info.directions))]
    )
    columns += params + list(_ATTR_COLS)
    df = pd.DataFrame(rows, columns=columns)
    if len(df):
        df = df.sort_values("number", kind="stable").reset_index(drop=True)
    return TrialTable(df=df, info=info, params=params, kinds=kinds, log_scale=log_scale, named=named)


_ATTR_COLS = (
    "epochs", "max_epochs", "best_epoch", "train_loss", "val_loss", "gap", "n_params", "seconds", "model",
    "reason", "stop_reason", "pruned_epoch", "last_step", "last_intermediate", "n_intermediate", "start", "complete", "run_dir",
)  # fmt: skip


def _kind(dist: BaseDistribution) -> tuple[str, bool]:
    if isinstance(dist, CategoricalDistribution):
        # numeric choices ([32, 64, 128]) are ordered: treat them as numbers (per-value table + rank correlation)
        numeric = all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in dist.choices)
        return (NUMERIC if numeric else CATEGORICAL), False
    if isinstance(dist, (FloatDistribution, IntDistribution)):
        return NUMERIC, bool(dist.log)
    return CATEGORICAL, False


def _row(t: FrozenTrial, n_obj: int, params: list[str], kinds: dict[str, str]) -> dict[str, Any]:
    a = t.user_attrs
    cfg = a.get(TRIAL.CONFIG) if isinstance(a.get(TRIAL.CONFIG), dict) else {}
    steps = sorted(t.intermediate_values)
    last_step = steps[-1] if steps else None
    row: dict[str, Any] = {"number": t.number, "state": t.state.name}
    values = list(t.values) if t.values is not None else [math.nan] * n_obj
    if n_obj == 1:
        row["value"] = _num(values[0])
    else:
        row.update({f"value_{i}": _num(v) for i, v in enumerate(values)})
    for p in params:
        v = t.params.get(
            p, t.user_attrs.get(p, math.nan) if p == EXPERIMENT else math.nan
        )  # NaN: a conditional parameter this trial did not sample
        row[p] = "None" if v is None and kinds[p] == CATEGORICAL else v
    finished = t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    epochs = a.get(TRIAL.EPOCHS, last_step if finished else None)
    train_loss, val_loss = _num(a.get(TRIAL.TRAIN_LOSS)), _num(a.get(TRIAL.VAL_LOSS))
    gap = _num(a.get(TRIAL.GAP))
    if math.isnan(gap) and not (math.isnan(train_loss) or math.isnan(val_loss)):
        gap = val_loss - train_loss  # the same definition tune/ records
    pruned_epoch = a.get(TRIAL.PRUNED_EPOCH, last_step if t.state == TrialState.PRUNED else None)
    seconds = a.get(TRIAL.SECONDS)
    if seconds is None and t.datetime_start and t.datetime_complete:
        seconds = (t.datetime_complete - t.datetime_start).total_seconds()
    row.update(
        epochs=_num(epochs),
        max_epochs=_num(a.get(TRIAL.MAX_EPOCHS, _dig(cfg, "train", "max_epochs") or t.params.get("train.max_epochs"))),
        best_epoch=_num(a.get(TRIAL.BEST_EPOCH)),
        train_loss=train_loss,
        val_loss=val_loss,
        gap=gap,
        n_params=_num(a.get(TRIAL.N_PARAMS)),
        seconds=_num(seconds),
        model=str(a.get(TRIAL.MODEL) or t.params.get("model.name") or _dig(cfg, "model", "name") or "-"),
        reason=a.get(TRIAL.REASON),
        stop_reason=a.get(TRIAL.STOP_REASON),
        pruned_epoch=_num(pruned_epoch),
        last_step=_num(last_step),
        last_intermediate=_num(t.intermediate_values[last_step]) if last_step is not None else math.nan,
        n_intermediate=len(steps),
        start=t.datetime_start,
        complete=t.datetime_complete,
        run_dir=a.get(TRIAL.RUN_DIR),
    )
    return row


def _dig(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _num(v: Any) -> float:
    """A float, or NaN for missing/non-numeric values (attrs written by older or other tools)."""
    if v is None or isinstance(v, bool):
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan
