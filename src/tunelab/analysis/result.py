"""AnalysisResult: every table of an analysis as plain data, and ``extract`` that computes them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from tunelab.analysis.frame import TrialTable, trial_table
from tunelab.analysis.impact import ParamImpact, impact
from tunelab.analysis.importance import Importance, param_importance
from tunelab.analysis.overfitting import Overfitting, overfitting
from tunelab.analysis.pruning import TrainingStats, training_stats
from tunelab.analysis.source import StudyInfo, study_info
from tunelab.analysis.summary import StudySummary, family_summary, pareto_front, study_summary, top_k

__all__ = ["AnalysisResult", "extract", "jsonable"]


@dataclass
class AnalysisResult:
    """What a study taught us; every field is plain data (dataclasses, dicts, DataFrames)."""

    summary: StudySummary
    table: TrialTable  # every trial, one row each
    top: pd.DataFrame  # top-k completed trials, best first
    importance: Importance
    impact: list[ParamImpact]
    overfitting: Overfitting
    training: TrainingStats  # early stopping and pruning
    families: pd.DataFrame  # per model family
    pareto: pd.DataFrame | None  # multi-objective studies only
    out_dir: Path | None = None
    files: list[Path] = field(default_factory=list)  # everything written
    plots: dict[str, str] = field(default_factory=dict)  # plot key -> "written" or why it was skipped
    reference: list[str] = field(default_factory=list)  # best trial (and ensemble) vs MiniRocket, in words

    @property
    def messages(self) -> list[str]:
        """Plain statements of what could not be analysed (empty for a healthy study)."""
        extra = [m for m in (self.importance.message, self.overfitting.message) if m]
        return [*self.summary.messages, *(m for m in extra if not self.summary.messages)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (NaN → None) of everything but the raw trial table."""
        imp = self.importance
        return jsonable({
            "summary": self.summary.__dict__,
            "messages": self.messages,
            "top_k": self.top,
            "importance": {"evaluator": imp.evaluator, "values": imp.values, "skipped": imp.skipped, "message": imp.message},
            "impact": [{**{k: v for k, v in i.__dict__.items() if k != "table"}, "groups": i.table} for i in self.impact],
            "overfitting": self.overfitting.__dict__,
            "training": self.training.__dict__,
            "families": self.families,
            "pareto_front": self.pareto,
            "plots": self.plots,
            "reference": self.reference,
        })  # fmt: skip


def extract(
    study: optuna.Study,
    *,
    storage: str = "",
    top_k_n: int = 5,
    gap_threshold: float | None = None,
    importance: str = "fanova",
    bins: int = 4,
    info: StudyInfo | None = None,
) -> AnalysisResult:
    """Compute every table for ``study`` (no files written, nothing rendered)."""
    info = info or study_info(study)
    table = trial_table(study, info)
    imp = param_importance(study, table, importance)
    impacts = impact(table, bins=bins)
    order = {p: i for i, p in enumerate(imp.ranked())}
    impacts.sort(key=lambda x: (order.get(x.param, len(order)), x.param))  # most important first
    return AnalysisResult(
        summary=study_summary(table, storage),
        table=table,
        top=top_k(table, top_k_n),
        importance=imp,
        impact=impacts,
        overfitting=overfitting(table, gap_threshold),
        training=training_stats(table),
        families=family_summary(table),
        pareto=pareto_front(study, table),
        reference=_reference_lines(study),
    )


def _reference_lines(study: optuna.Study) -> list[str]:
    """The study's MiniRocket reference (a study attribute) beside its best trial and ensemble."""
    from tunelab.baselines.reference import comparison_lines
    from tunelab.results.attrs import STUDY, TRIAL
    from tunelab.results.study import best_trial

    attrs = study.user_attrs
    best = best_trial(study)
    metrics = best.user_attrs.get(TRIAL.METRICS) if best is not None else None
    return comparison_lines(attrs.get(STUDY.REFERENCE), metrics, attrs.get(STUDY.ENSEMBLE))


def jsonable(obj: Any) -> Any:
    """Recursively turn DataFrames, numpy scalars, paths and datetimes into JSON types; NaN → None."""
    if isinstance(obj, pd.DataFrame):
        return [jsonable(r) for r in obj.to_dict(orient="records")]
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.generic,)):
        obj = obj.item()
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, (Path, datetime, pd.Timestamp)):
        return str(obj)
    if obj is pd.NaT:
        return None
    return obj
