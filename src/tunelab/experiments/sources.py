"""Read finished runs into comparison samples: a run directory, a study's best trial, or one trial.

Accepted forms (``tunelab compare A B ...``):

* ``RUN_DIR`` — a directory written by ``tunelab train`` (``summary.json``, ``metrics.jsonl``);
* ``STUDY_DIR`` — a study directory (``study.json`` → the Optuna study; its best trial);
* ``STUDY_DIR#N`` — trial number ``N`` of that study.

A trial's metrics come from its directory (``trials/<N>-<time>/summary.json``) when it has
one, else from the trial's user attributes in the study storage.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from tunelab.errors import UserError
from tunelab.experiments.comparison import Sample
from tunelab.results.attrs import TRIAL

__all__ = ["load_source", "read_history", "sample_from_run", "sample_from_trial"]


def read_history(path: Path) -> list[dict[str, Any]]:
    """The per-epoch records of a ``metrics.jsonl``; a line cut by a kill is skipped."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def _seconds_per_epoch(history: list[dict[str, Any]], seconds: float | None, epochs: int | None) -> float | None:
    per_epoch = [float(r["seconds"]) for r in history if isinstance(r.get("seconds"), int | float)]
    if per_epoch:  # the median: a process's first epoch also pays one-off start-up costs
        return float(statistics.median(per_epoch))
    if seconds is not None and epochs:
        return float(seconds) / epochs
    return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: unreadable ({exc}); was the run interrupted? re-run it or pick another") from None


def sample_from_run(run_dir: Path, label: str | None = None) -> Sample:
    """A finished run directory (``summary.json`` + ``metrics.jsonl`` + ``config.json``)."""
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        raise UserError(
            f"{run_dir}: no summary.json (the run has not finished); pass a finished run or study directory"
        )
    summary = _read_json(summary_path)
    history = read_history(run_dir / "metrics.jsonl")
    config = _read_json(run_dir / "config.json") if (run_dir / "config.json").is_file() else None
    epochs = summary.get("epochs")
    return Sample(
        label=label or run_dir.name,
        metrics={k: float(v) for k, v in (summary.get("metrics") or {}).items() if isinstance(v, int | float)},
        n_params=summary.get("n_params"),
        seconds_per_epoch=_seconds_per_epoch(history, summary.get("seconds"), epochs),
        epochs=epochs,
        seconds=summary.get("seconds"),
        history=history,
        config=config,
        source=str(run_dir),
    )


def sample_from_trial(trial: Any, study_dir: Path | None, label: str) -> Sample:
    """An Optuna ``FrozenTrial`` written by tunelab (user attrs per ``results.attrs.TRIAL``)."""
    attrs = trial.user_attrs
    rel = attrs.get(TRIAL.RUN_DIR)
    if rel and study_dir is not None:
        run_dir = Path(rel) if Path(rel).is_absolute() else study_dir / rel
        if (run_dir / "summary.json").is_file():
            sample = sample_from_run(run_dir, label)
            sample.source = f"{study_dir}#{trial.number}"
            return sample
    metrics = attrs.get(TRIAL.METRICS) or {}
    if not metrics and trial.value is not None:
        metrics = {"value": trial.value}
    history = read_history(study_dir / rel / "metrics.jsonl") if rel and study_dir is not None else []
    epochs, seconds = attrs.get(TRIAL.EPOCHS), attrs.get(TRIAL.SECONDS)
    return Sample(
        label=label,
        metrics={k: float(v) for k, v in metrics.items() if isinstance(v, int | float)},
        n_params=attrs.get(TRIAL.N_PARAMS),
        seconds_per_epoch=_seconds_per_epoch(history, seconds, epochs),
        epochs=epochs,
        seconds=seconds,
        history=history,
        config=attrs.get(TRIAL.CONFIG),
        source=f"{study_dir}#{trial.number}",
    )


def _trial_dir(study_dir: Path, number: int) -> Path | None:
    found = sorted(p for p in (study_dir / "trials").glob(f"{number}-*") if p.is_dir())
    return found[-1] if found else None


def _from_results_file(study_dir: Path, number: int | None, label: str) -> Sample | None:
    """From ``study_results.json`` (rewritten as trials finish): no storage connection needed."""
    path = study_dir / "study_results.json"
    if not path.is_file():
        return None
    data = _read_json(path)
    if not isinstance(data, dict):
        return None
    if number is None:
        rec = data.get("best_trial")
    else:
        rec = next((t for t in data.get("trials") or [] if isinstance(t, dict) and t.get("number") == number), None)
        if rec is not None and rec.get("state") != "COMPLETE":
            raise UserError(
                f"{study_dir}#{number}: trial {number} is {rec.get('state')}, not finished; pick a COMPLETE trial"
            )
    if not isinstance(rec, dict) or not isinstance(rec.get("number"), int):
        return None
    attrs = rec.get("user_attrs") or {}
    rel = rec.get("run_dir") or attrs.get(TRIAL.RUN_DIR)
    if rel and (study_dir / rel / "summary.json").is_file():
        sample = sample_from_run(study_dir / rel, label)
        sample.source = f"{study_dir}#{rec['number']}"
        return sample
    metrics = rec.get("metrics") or attrs.get(TRIAL.METRICS)
    if not metrics:
        return None
    history = read_history(study_dir / rel / "metrics.jsonl") if rel else []
    epochs, seconds = attrs.get(TRIAL.EPOCHS), attrs.get(TRIAL.SECONDS)
    return Sample(
        label=label,
        metrics={k: float(v) for k, v in metrics.items() if isinstance(v, int | float)},
        n_params=rec.get("n_params") or attrs.get(TRIAL.N_PARAMS),
        seconds_per_epoch=_seconds_per_epoch(history, seconds, epochs),
        epochs=epochs,
        seconds=seconds,
        history=history,
        config=attrs.get(TRIAL.CONFIG),
        source=f"{study_dir}#{rec['number']}",
    )


def _from_storage(study_dir: Path, number: int | None, label: str) -> Sample:
    import optuna

    from tunelab.analysis.source import load_study, resolve_study
    from tunelab.results.study import best_trial

    study = load_study(resolve_study(study_dir))
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if number is None:
        if not done:
            raise UserError(f"{study_dir}: the study has no finished trial yet; wait for one or pass a run directory")
        trial = best_trial(study)
    else:
        match = [t for t in study.get_trials(deepcopy=False) if t.number == number]
        if not match:
            raise UserError(
                f"{study_dir}#{number}: no trial {number} in study '{study.study_name}' (it has {len(study.trials)} trials)"
            )
        trial = match[0]
        if trial.state != optuna.trial.TrialState.COMPLETE:
            raise UserError(
                f"{study_dir}#{number}: trial {number} is {trial.state.name}, not finished; pick a COMPLETE trial"
            )
    return sample_from_trial(trial, study_dir, label)


def _study_sample(study_dir: Path, number: int | None, label: str) -> Sample:
    sample = _from_results_file(study_dir, number, label)
    if sample is not None:
        return sample
    if (study_dir / "study.json").is_file():
        return _from_storage(study_dir, number, label)
    run_dir = _trial_dir(study_dir, number) if number is not None else None
    if run_dir is None:
        raise UserError(
            f"{study_dir}: no study_results.json, study.json or trials/<N>-*/ folder to read; pass a run directory or a study directory written by tunelab"
        )
    return sample_from_run(run_dir, label)


def load_source(spec: str) -> Sample:
    """``RUN_DIR``, ``STUDY_DIR`` (its best trial) or ``STUDY_DIR#N`` (trial N) as a Sample."""
    path_text, sep, trial_text = spec.rpartition("#") if "#" in spec else (spec, "", "")
    path = Path(path_text)
    number = None
    if sep:
        try:
            number = int(trial_text)
        except ValueError:
            raise UserError(f"{spec}: the part after '#' must be a trial number, e.g. runs/study#12") from None
    if not path.is_dir():
        raise UserError(f"{path}: not found; pass a run directory, a study directory, or STUDY_DIR#TRIAL")
    if number is None and (path / "summary.json").is_file():
        return sample_from_run(path, path.name)
    is_study = any((path / f).exists() for f in ("study.json", "best_config.json", "study_results.json", "trials"))
    if not is_study:
        raise UserError(
            f"{path}: neither a run (no summary.json) nor a study directory (no study.json); pass one written by tunelab"
        )
    label = f"{path.name}#{number}" if number is not None else f"{path.name} (best)"
    sample = _study_sample(path, number, label)
    if not sample.metrics or all(not math.isfinite(v) for v in sample.metrics.values()):
        raise UserError(f"{spec}: no metrics recorded for this trial; was it written by an older tunelab?")
    return sample
