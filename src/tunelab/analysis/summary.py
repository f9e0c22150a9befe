"""Study summary, top-k trials, per-model-family summary and the Pareto front."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd

from tunelab.analysis.frame import TrialTable

__all__ = ["StudySummary", "family_summary", "pareto_front", "study_summary", "top_k"]

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")


@dataclass
class StudySummary:
    """What the study is and where it stands; ``messages`` say plainly what could not be analysed."""

    name: str
    storage: str  # masked: never holds a password
    phase: str
    objectives: list[str]
    directions: list[str]
    counts: dict[str, int]  # trials by state
    n_trials_planned: int | None
    best: list[dict[str, Any]]  # the best trial (one objective) or the Pareto-optimal trials
    started: str | None
    last_completed: str | None
    messages: list[str] = field(default_factory=list)

    @property
    def n_complete(self) -> int:
        return self.counts.get("COMPLETE", 0)


def study_summary(table: TrialTable, storage: str = "") -> StudySummary:
    """Counts by state, the best trial(s) and plain messages for studies too small to analyse."""
    df = table.df
    counts = {s: int((df["state"] == s).sum()) for s in STATES}
    done = table.complete
    best: list[dict[str, Any]] = []
    if len(done):
        if table.info.multi_objective:
            rows = done[_non_dominated(done[table.value_cols].to_numpy(float), table.info.directions)]
        else:
            rows = _sorted(done, table)[:1]
        best = [_trial_dict(r, table) for _, r in rows.iterrows()]
    starts = df["start"].dropna()
    completes = df["complete"].dropna()
    return StudySummary(
        name=table.info.name,
        storage=storage,
        phase=table.info.phase,
        objectives=table.info.objectives,
        directions=table.info.directions,
        counts=counts,
        n_trials_planned=table.info.n_trials,
        best=best,
        started=str(starts.min()) if len(starts) else None,
        last_completed=str(completes.max()) if len(completes) else None,
        messages=_messages(counts, len(done), table),
    )


def _messages(counts: dict[str, int], n_done: int, table: TrialTable) -> list[str]:
    total = sum(counts.values())
    others = ", ".join(f"{n} {s.lower()}" for s, n in counts.items() if n and s != "COMPLETE")
    others = f" ({others})" if others else ""
    if total == 0:
        return [f"study '{table.info.name}' has no trials yet: nothing to analyse."]
    if n_done == 0:
        if counts["PRUNED"] and not counts["FAIL"] and not counts["COMPLETE"]:
            return [
                f"all {counts['PRUNED']} finished trials were pruned: no trial completed, so there is nothing to rank;"
                " the pruner may be too aggressive (raise its warm-up) or the budget too small."
            ]
        return [f"no completed trials yet{others}: nothing to rank, no importance or impact."]
    if n_done == 1:
        return [f"only 1 completed trial{others}: it is the best by default; importance and impact need at least 2."]
    return []


def top_k(table: TrialTable, k: int = 5) -> pd.DataFrame:
    """The ``k`` best completed trials by the first objective, best first.

    Columns: rank, number, one column per objective (named by the objective), epochs, max_epochs,
    best_epoch, gap, n_params, seconds, model, then the trial's parameters.
    """
    done = _sorted(table.complete, table).head(max(k, 0))
    out = pd.DataFrame({"rank": np.arange(1, len(done) + 1), "number": done["number"].to_numpy()})
    for col, name in zip(table.value_cols, _objective_names(table), strict=True):
        out[name] = done[col].to_numpy()
    for col in ("epochs", "max_epochs", "best_epoch", "gap", "n_params", "seconds", "model"):
        if col not in out:  # an objective named like a fact (n_params) already holds it
            out[col] = done[col].to_numpy()
    for p in table.params:
        out[p] = done[p].to_numpy()
    return out


def family_summary(table: TrialTable) -> pd.DataFrame:
    """Per model family: trials, completed/pruned/failed counts and the objective's count, mean, std, min, max, best."""
    df = table.df
    rows = []
    for model, group in df.groupby("model", sort=True):
        done = group[(group["state"] == "COMPLETE") & np.isfinite(group[table.primary].astype(float))]
        vals = done[table.primary].astype(float)
        best_idx = _sorted(done, table).index[0] if len(vals) else None
        rows.append({
            "model": model,
            "trials": len(group),
            "complete": len(done),
            "pruned": int((group["state"] == "PRUNED").sum()),
            "failed": int((group["state"] == "FAIL").sum()),
            "mean": vals.mean() if len(vals) else math.nan,
            "std": vals.std(ddof=1) if len(vals) > 1 else math.nan,
            "min": vals.min() if len(vals) else math.nan,
            "max": vals.max() if len(vals) else math.nan,
            "best_trial": int(done.loc[best_idx, "number"]) if best_idx is not None else None,
        })  # fmt: skip
    out = pd.DataFrame(
        rows, columns=["model", "trials", "complete", "pruned", "failed", "mean", "std", "min", "max", "best_trial"]
    )
    return out.sort_values("mean", ascending=not table.maximize, na_position="last", kind="stable").reset_index(
        drop=True
    )


def pareto_front(study: optuna.Study, table: TrialTable) -> pd.DataFrame | None:
    """Pareto-optimal completed trials of a multi-objective study (None for one objective)."""
    if not table.info.multi_objective:
        return None
    numbers = sorted(t.number for t in study.best_trials) if len(table.complete) else []
    done = table.df[table.df["number"].isin(numbers)]
    out = pd.DataFrame({"number": done["number"].to_numpy()})
    for col, name in zip(table.value_cols, _objective_names(table), strict=True):
        out[name] = done[col].to_numpy()
    for col in ("epochs", "gap", "n_params", "model"):
        if col not in out:
            out[col] = done[col].to_numpy()
    for p in table.params:
        out[p] = done[p].to_numpy()
    return out.sort_values(_objective_names(table)[0], ascending=not table.maximize, kind="stable").reset_index(
        drop=True
    )


def _objective_names(table: TrialTable) -> list[str]:
    """Objective names as column names, unless one clashes with an identity column or a parameter."""
    taken = {"rank", "number", "model", *table.params}
    names = table.info.objectives
    if len(set(names)) != len(names) or any(n in taken for n in names):
        return table.value_cols
    return names


def _sorted(done: pd.DataFrame, table: TrialTable) -> pd.DataFrame:
    """Best first: the objective, then (among ties) the lower validation loss, then the earlier
    trial -- the order of ``tunelab.results.study.best_trial``."""
    keys = [table.primary, *(["val_loss"] if "val_loss" in done and table.primary != "val_loss" else []), "number"]
    return done.sort_values(keys, ascending=[not table.maximize, *[True] * (len(keys) - 1)], kind="stable")


def _non_dominated(values: np.ndarray, directions: list[str]) -> np.ndarray:
    """Boolean mask of Pareto-optimal rows (signs flipped so every objective is minimised)."""
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    v = values * signs
    keep = np.ones(len(v), dtype=bool)
    for i in range(len(v)):
        dominated = np.all(v <= v[i], axis=1) & np.any(v < v[i], axis=1)
        keep[i] = not dominated.any()
    return keep


def _trial_dict(row: pd.Series, table: TrialTable) -> dict[str, Any]:
    params = {p: _plain(row[p]) for p in table.params if not _missing(row[p])}
    values = {name: _plain(row[col]) for col, name in zip(table.value_cols, table.info.objectives, strict=True)}
    return {"number": int(row["number"]), "values": values, "params": params, "model": row["model"]}


def _missing(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v
