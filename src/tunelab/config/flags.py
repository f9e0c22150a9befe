"""Command-line flags → a StudyConfig (what ``tunelab tune`` and ``tunelab space`` share).

Seed-compatible flags set the base experiment (``--epochs`` is ``train.max_epochs``...) and are
then *locked*: a key set on the command line is never searched, even if the study file lists it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tunelab.config.loader import resolve_base, study_from_mapping, study_mapping
from tunelab.config.overrides import apply_overrides, split_override
from tunelab.config.study import StudyConfig

__all__ = ["family_labels", "study_from_flags"]


def family_labels(models: str | None, enhanced: bool | None) -> list[str] | None:
    """``--model gru,lstm`` (or ``--model-type bilstm --standard``) → family labels."""
    labels = [m.strip() for m in (models or "").split(",") if m.strip()]
    if enhanced is not None and not labels:
        labels = ["bilstm"]
    if enhanced is False:  # --standard: seed 000's plain BiLSTM
        labels = ["bilstm_standard" if lab in ("bilstm", "bilstm_enhanced") else lab for lab in labels]
    return labels or None


def study_from_flags(
    config: str | Path | None,
    *,
    overrides: Sequence[str] = (),
    base_flags: Sequence[str] = (),
    models: str | None = None,
    enhanced: bool | None = None,
    objectives: str | None = None,
    sampler: str | None = None,
    pruner: str | None = None,
    storage: str | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    seed: int | None = None,
) -> tuple[StudyConfig, frozenset[str]]:
    """Load ``config`` (a study file, an experiment file, or nothing) and apply the flags.

    Returns the validated study and the config keys the command line fixed (never searched).
    """
    root: Path | None = None
    if config is not None:
        path = Path(config)
        data, source, root = study_mapping(path), str(path), path.parent
    else:
        data, source = {}, "command line"
    labels = family_labels(models, enhanced)
    if labels:
        data["families"] = labels
    data.setdefault("name", "-".join(labels) if labels and len(labels) <= 2 else "tune")

    base = resolve_base(data.get("base"), root)
    items = [split_override(o) for o in [*base_flags, *overrides]]
    locked = frozenset(k for k, _ in items)
    if items:
        data["base"] = apply_overrides(base or {}, dict(items))
    elif base is not None:
        data["base"] = base
    if objectives:
        data["objective"] = {"metrics": [m.strip() for m in objectives.split(",") if m.strip()]}
    for key, value in (("sampler", sampler), ("pruner", pruner)):
        if value is not None:
            current = data.get(key)
            same = isinstance(current, dict) and current.get("name") == value
            data[key] = current if same else {"name": value}
    if storage is not None:
        data["storage"] = storage
    if n_trials is not None or timeout is not None:
        budget = dict(data.get("budget") or {})
        if n_trials is not None:
            budget["n_trials"] = n_trials
        if timeout is not None:
            budget["timeout"] = timeout
        data["budget"] = budget
    if seed is not None:
        data["seed"] = seed
    return study_from_mapping(data, source, root), locked
