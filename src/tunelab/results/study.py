"""The study directory: the only writer of ``runs/<study>/`` (every file atomic).

::

    study.json          {"storage": url, "study_name": name, "storage_masked": bool}
    study.yaml          the resolved StudyConfig that ran
    best_params.json    the best trial's parameters plus the values earlier phases fixed
    best_config.json    the best trial's complete ExperimentConfig
    best_model.pt       a copy of the best trial's checkpoint (``tunelab evaluate runs/<study>``)
    trials.csv          one row per trial
    study_results.json  the whole history, machine-readable
    pareto_front.json   several objectives only: the non-dominated trials
    trials/<number>-<timestamp>/   each trial's config.json, metrics.jsonl, best_model.pt

With an artifact store (the study's ``artifacts`` attribute), a best trial that ran on another
host has its checkpoint fetched from there (:mod:`tunelab.results.artifacts`).

``study.json`` holds the real storage URL only when it has no password; otherwise the URL is
stored masked (``user:***@``) and reopening the study needs ``--storage URL`` again.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tunelab.results.attrs import STOP, STUDY, TRIAL
from tunelab.results.io import atomic_write, read_json, write_json, write_text

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

__all__ = [
    "StudyWriter",
    "best_trial",
    "read_study_json",
    "tie_loss",
    "time_stopped",
    "time_stopped_note",
    "trial_reason",
    "trial_rows",
]

STUDY_JSON = "study.json"
log = logging.getLogger(__name__)


def read_study_json(study_dir: str | Path) -> dict[str, Any]:
    """``{"storage", "study_name", "storage_masked"}`` of a study directory."""
    return read_json(Path(study_dir) / STUDY_JSON)  # type: ignore[no-any-return]


def tie_loss(attrs: dict[str, Any] | None) -> float:
    """The second key of "best": a trial's validation loss at its best epoch, from its user
    attributes (inf when it has none).  A validation split of a few dozen series ties on accuracy
    or F1 often (20 series score in steps of 0.05); among trials with the best value, the one with
    the lower validation loss is the more confident model, and the earlier trial only the luckier
    draw of the queue."""
    value = (attrs or {}).get(TRIAL.VAL_LOSS)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else math.inf


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best complete trial (ties on the objective go to the lower validation loss, then the
    earlier trial: :func:`tie_loss`); with several objectives, the Pareto-optimal trial that is
    best on the first objective (the Pareto front itself is written to pareto_front.json)."""
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        return None
    if len(study.directions) == 1:
        sign = -1.0 if study.directions[0].name == "MAXIMIZE" else 1.0
        return min(done, key=lambda t: (sign * t.values[0], tie_loss(t.user_attrs), t.number))
    front = study.best_trials
    sign = 1.0 if study.directions[0].name == "MAXIMIZE" else -1.0
    return max(front, key=lambda t: sign * t.values[0]) if front else None


def time_stopped(trials: Sequence[FrozenTrial]) -> tuple[int, int]:
    """(completed trials the clock stopped -- their time share or the study's timeout --, completed trials)."""
    done = [t for t in trials if t.state.name == "COMPLETE"]
    return sum(t.user_attrs.get(TRIAL.STOP_REASON) in STOP.TIME for t in done), len(done)


def time_stopped_note(stopped: int, complete: int) -> str | None:
    """A sentence when the clock, not early stopping, ended at least half of the completed trials
    (their scores then say as much about the budget as about the configurations); else None."""
    if not stopped or 2 * stopped < complete:
        return None
    return (
        f"{stopped} of {complete} completed trials were stopped by the time budget (their share of it or the"
        " study's timeout), not by early stopping: their scores are limited by the time they had;"
        " a longer --timeout, or a GPU, trains them further"
    )


def trial_reason(trial: FrozenTrial, retried_as: dict[int, int]) -> str:
    """Why a trial was pruned or failed ('' for complete ones)."""
    reason = trial.user_attrs.get(TRIAL.REASON, "")
    if reason:
        return str(reason)
    state = trial.state.name
    if state == "FAIL" and trial.number in retried_as:
        return f"worker lost (no heartbeat); retried as trial {retried_as[trial.number]}"
    if state == "FAIL":
        return "failed (worker lost or interrupted)"
    if state == "PRUNED":
        return "pruned"
    return ""


def _retries(trials: Sequence[FrozenTrial]) -> dict[int, int]:
    """failed trial number → the trial that retried it (from Optuna's retry callback)."""
    out: dict[int, int] = {}
    for t in trials:
        failed = t.system_attrs.get("failed_trial")
        history = t.system_attrs.get("retry_history") or ([failed] if failed is not None else [])
        if history:
            out[int(history[-1])] = t.number
    return out


def _num(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def trial_rows(study: optuna.Study, objectives: Sequence[str]) -> list[dict[str, Any]]:
    """One flat record per trial: what trials.csv holds (and the analysis can reuse)."""
    trials = study.get_trials(deepcopy=False)
    retried = _retries(trials)
    param_names: dict[str, None] = {}
    metric_names: dict[str, None] = {}
    for t in trials:
        param_names.update(dict.fromkeys(t.params))
        metric_names.update(dict.fromkeys(t.user_attrs.get(TRIAL.METRICS) or {}))
    rows = []
    for t in trials:
        ua = t.user_attrs
        row: dict[str, Any] = {"number": t.number, "state": t.state.name}
        if len(objectives) == 1:
            row["value"] = _num(t.value) if t.values else None
        else:
            for i, name in enumerate(objectives):
                row[f"value_{name}"] = _num(t.values[i]) if t.values else None
        for p in param_names:
            row[f"params_{p}"] = t.params.get(p)
        row |= {
            "model": ua.get(TRIAL.MODEL),
            "epochs": ua.get(TRIAL.EPOCHS),
            "best_epoch": ua.get(TRIAL.BEST_EPOCH),
            "train_loss": _num(ua.get(TRIAL.TRAIN_LOSS)),
            "val_loss": _num(ua.get(TRIAL.VAL_LOSS)),
            "gap": _num(ua.get(TRIAL.GAP)),
            "n_params": ua.get(TRIAL.N_PARAMS),
            "seconds": ua.get(TRIAL.SECONDS)
            if ua.get(TRIAL.SECONDS) is not None
            else (t.duration.total_seconds() if t.duration else None),
        }
        metrics = ua.get(TRIAL.METRICS) or {}
        for m in metric_names:
            if m not in row:
                row[m] = _num(metrics.get(m))
        row["reason"] = trial_reason(t, retried)
        row["stop_reason"] = ua.get(TRIAL.STOP_REASON)
        row["run_dir"] = ua.get(TRIAL.RUN_DIR)
        rows.append(row)
    return rows


def _csv(rows: list[dict[str, Any]]) -> str:
    columns: dict[str, None] = {}
    for r in rows:
        columns.update(dict.fromkeys(r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns) or ["number"], extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue()


def _trial_record(t: FrozenTrial, retried: dict[int, int]) -> dict[str, Any]:
    ua = {k: v for k, v in t.user_attrs.items() if k != TRIAL.CONFIG}
    return {
        "number": t.number,
        "state": t.state.name,
        "values": [_num(v) for v in t.values] if t.values else None,
        "params": t.params,
        "user_attrs": ua,
        "reason": trial_reason(t, retried),
        "intermediate_values": {str(k): _num(v) for k, v in sorted(t.intermediate_values.items())},
        "datetime_start": t.datetime_start.isoformat() if t.datetime_start else None,
        "datetime_complete": t.datetime_complete.isoformat() if t.datetime_complete else None,
    }


#: The share of a study's wall-clock time that rewriting its files after trials may take.
UPDATE_SHARE = 0.1


class StudyWriter:
    """Writes one study directory.  Safe to call :meth:`update` after every trial."""

    def __init__(self, study_dir: str | Path) -> None:
        self.dir = Path(study_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._best_copied: tuple[int, float] | None = None
        self._updated_at = -math.inf  # time.monotonic() when the last refresh finished
        self._update_cost = 0.0  # and how long it took
        self.artifacts: str | None = None  # this host's path to the study's artifact store (default: the study's)

    # ----------------------------------------------------------------- start

    def start(self, study_name: str, storage: str, masked_storage: str, study_config: dict[str, Any]) -> None:
        """study.json and study.yaml (written first, so a running study can be inspected)."""
        masked = masked_storage != storage
        write_json(
            self.dir / STUDY_JSON,
            {"storage": masked_storage if masked else storage, "study_name": study_name, "storage_masked": masked},
        )
        write_text(self.dir / "study.yaml", yaml.safe_dump(study_config, sort_keys=False))

    def trial_dir(self, number: int) -> Path:
        """``trials/<number>-<timestamp>/`` for a new trial (created by the run writer)."""
        return self.dir / "trials" / f"{number}-{time.strftime('%Y%m%d-%H%M%S')}"

    @staticmethod
    def write_traceback(trial_dir: str | Path, text: str) -> Path:
        """A failed trial's traceback, beside its config."""
        return write_text(Path(trial_dir) / "traceback.txt", text)

    # ----------------------------------------------------------------- after trials

    def refresh(self, study: optuna.Study, objectives: Sequence[str]) -> bool:
        """:meth:`update` after trials, unless it would spend more than :data:`UPDATE_SHARE` of
        the time since the last one; True when it ran.

        The files are rewritten whole, so each rewrite costs more as the study grows (0.3 s at
        1,000 trials): a long study of quick trials rewrites them every few trials instead of after
        each, and they lag the storage by at most ten rewrites' time.  The storage is the record;
        the final update of a run always runs, and ``tunelab tune --resume`` rewrites them."""
        now = time.monotonic()
        if now - self._updated_at < self._update_cost * (1 / UPDATE_SHARE - 1):
            return False
        self.update(study, objectives)
        self._updated_at = time.monotonic()
        self._update_cost = self._updated_at - now
        return True

    def update(self, study: optuna.Study, objectives: Sequence[str], *, final: bool = False) -> FrozenTrial | None:
        """Rewrite trials.csv, study_results.json and the best_* files from the storage."""
        from optuna.trial import TrialState

        trials = study.get_trials(deepcopy=False)
        retried = _retries(trials)
        rows = trial_rows(study, objectives)
        write_text(self.dir / "trials.csv", _csv(rows))
        best = best_trial(study)
        attrs = study.user_attrs
        fixed = attrs.get(STUDY.FIXED_PARAMS) or {}
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.state.name] = counts.get(t.state.name, 0) + 1
        multi = len(study.directions) > 1
        front = study.best_trials if multi and any(t.state == TrialState.COMPLETE for t in trials) else []
        results = {
            "study_name": study.study_name,
            "objectives": list(objectives),
            "directions": [d.name.lower() for d in study.directions],
            "phase": attrs.get(STUDY.PHASE),
            "fixed_params": fixed,
            "finished": final,
            "n_trials": len(trials),
            "states": counts,
            "best_trial": self._best_record(best, fixed),
            "reference": attrs.get(STUDY.REFERENCE),
            "ensemble": attrs.get(STUDY.ENSEMBLE),
            "pareto_front": [_trial_record(t, retried) for t in front] if multi else None,
            "trials": [_trial_record(t, retried) for t in trials],
        }
        write_json(self.dir / "study_results.json", results, indent=None)  # all trials, one line: the C encoder
        if multi:
            write_json(
                self.dir / "pareto_front.json",
                [
                    {"number": t.number, "values": dict(zip(objectives, t.values, strict=False)), "params": t.params}
                    for t in front
                ],
            )
        if best is not None:
            write_json(self.dir / "best_params.json", {**fixed, **best.params})
            if TRIAL.CONFIG in best.user_attrs:
                write_json(self.dir / "best_config.json", best.user_attrs[TRIAL.CONFIG])
            if not self._copy_best_model(best):
                self._fetch_best_model(study, best)
        return best

    @staticmethod
    def _best_record(best: FrozenTrial | None, fixed: dict[str, Any]) -> dict[str, Any] | None:
        if best is None:
            return None
        return {
            "number": best.number,
            "values": [_num(v) for v in best.values],
            "params": {**fixed, **best.params},
            "metrics": best.user_attrs.get(TRIAL.METRICS, {}),
            "n_params": best.user_attrs.get(TRIAL.N_PARAMS),
            "run_dir": best.user_attrs.get(TRIAL.RUN_DIR),
        }

    def _copy_best_model(self, best: FrozenTrial) -> bool:
        """Copy the best trial's checkpoint from its run directory here; False if it is not here."""
        key = (best.number, float(best.values[0]))
        run_dir = best.user_attrs.get(TRIAL.RUN_DIR)
        if self._best_copied == key and (self.dir / "best_model.pt").is_file() or not run_dir:
            return True
        src = self.dir / run_dir / "best_model.pt"
        if not src.is_file():
            return False
        with open(src, "rb") as fh:
            atomic_write(self.dir / "best_model.pt", lambda out: shutil.copyfileobj(fh, out))
        self._best_copied = key
        return True

    def _fetch_best_model(self, study: optuna.Study, best: FrozenTrial) -> None:
        """The best trial ran on another host: its checkpoint from the artifact store, if any."""
        from tunelab.errors import UserError
        from tunelab.results.artifacts import CHECKPOINT, fetch_file, study_store

        try:
            store = study_store(study, self.artifacts)
            if store is not None and fetch_file(store, best, CHECKPOINT, self.dir / "best_model.pt"):
                self._best_copied = (best.number, float(best.values[0]))
        except UserError as exc:  # a store this host cannot reach: the files stay as they are
            log.warning("best_model.pt of trial %d not fetched: %s", best.number, exc)
