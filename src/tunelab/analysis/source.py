"""Find and open the study to analyse: from a study directory's ``study.json`` or a storage URL.

A study directory written by ``tunelab tune`` holds ``study.json`` = ``{"storage": url, "study_name": name}``.
Storage URLs may carry a password; it is masked (``user:***@``) in everything we print or write.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from tunelab.errors import UserError
from tunelab.results.attrs import STUDY

__all__ = ["StudyInfo", "StudyRef", "load_study", "mask_url", "resolve_study", "storage_url", "study_info"]

log = logging.getLogger(__name__)

STUDY_FILE = "study.json"


def mask_url(url: str) -> str:
    """``postgresql://user:secret@host/db`` → ``postgresql://user:***@host/db`` (tune/'s rule, one place)."""
    from tunelab.storage import mask_url as mask

    return mask(url)


@dataclass(frozen=True)
class StudyRef:
    """Where a study lives.  ``study_dir`` is None when only a storage URL was given."""

    storage: str
    study_name: str
    study_dir: Path | None = None

    @property
    def masked_storage(self) -> str:
        return mask_url(self.storage)


@dataclass
class StudyInfo:
    """The study-level facts analysis needs, read from ``study.user_attrs`` with fallbacks."""

    name: str
    directions: list[str]  # "maximize" / "minimize", one per objective
    objectives: list[str]  # metric names, one per objective
    phase: str  # the study's phase name, or "study"
    n_trials: int | None  # planned number of trials, when the study config says so
    study_config: dict[str, Any] = field(default_factory=dict)
    save_dir: Path | None = None

    @property
    def multi_objective(self) -> bool:
        return len(self.directions) > 1


def resolve_study(
    study_dir: str | Path | None = None, *, storage: str | None = None, study_name: str | None = None
) -> StudyRef:
    """Turn ``STUDY_DIR`` or ``--storage URL --study NAME`` into a :class:`StudyRef`.

    A study directory needs ``study.json``; ``storage``/``study_name`` given alongside it override
    what the file says.  A relative sqlite path is tried against the working directory, then against
    the study directory and its parents, so ``tunelab analyze runs/x`` works from anywhere.
    """
    sdir = Path(study_dir) if study_dir is not None else None
    if sdir is not None:
        if not sdir.is_dir():
            raise UserError(
                f"{sdir}: study directory not found; pass the runs/<study> folder written by `tunelab tune`"
            )
        meta_path = sdir / STUDY_FILE
        if meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise UserError(
                    f"{meta_path}: unreadable ({exc}); re-run `tunelab tune` or pass --storage and --study"
                ) from None
            if not storage and meta.get("storage_masked"):  # tune never writes a password to disk
                raise UserError(
                    f"{meta_path}: the storage URL has a password, which is not saved; pass it again with --storage URL"
                )
            storage = storage or meta.get("storage")
            study_name = study_name or meta.get("study_name")
        elif not (storage and study_name):
            raise UserError(
                f"{sdir}: no {STUDY_FILE} in this folder; pass the study directory written by `tunelab tune`, or --storage URL --study NAME"
            )
    if not storage or not study_name:
        missing = "--storage URL" if not storage else "--study NAME"
        raise UserError(
            f"no study given: pass a study directory, or both --storage URL and --study NAME (missing {missing})"
        )
    return StudyRef(_locate_sqlite(storage, sdir), study_name, sdir)


def _locate_sqlite(storage: str, study_dir: Path | None) -> str:
    """Make a relative sqlite/journal path point at an existing file; refuse a missing one (opening would create it)."""
    from tunelab.storage import journal_path

    jp = journal_path(storage)
    if storage.startswith("sqlite:///") and ":memory:" not in storage:
        prefix, raw = "sqlite:///", storage.removeprefix("sqlite:///")
    elif jp is not None:
        prefix, raw = ("journal://" if storage.startswith("journal://") else ""), jp
    else:
        return storage
    path = Path(raw)
    bases = [Path.cwd()]
    if study_dir is not None and not path.is_absolute():
        bases += [study_dir.resolve(), *study_dir.resolve().parents]
    for cand in [path] if path.is_absolute() else [b / path for b in bases]:
        if cand.is_file():
            return prefix + cand.as_posix()
    raise UserError(
        f"--storage {mask_url(storage)}: file {path} not found; check the path (relative paths are read from the working directory)"
    )


def load_study(ref: StudyRef) -> optuna.Study:
    """Open the study (nothing is written), with a plain error when it is missing."""
    from tunelab.storage import make_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = make_storage(ref.storage)  # UserError (masked) when unreachable or a driver is missing
    try:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    except Exception as exc:  # a server that accepted the connection but not the query
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"--storage {ref.masked_storage}: cannot read studies ({mask_url(first)}); check the URL and that the server is reachable"
        ) from None
    if ref.study_name not in names:
        known = ", ".join(sorted(names)[:10]) or "none"
        raise UserError(f"--study {ref.study_name}: no such study in {ref.masked_storage} (studies there: {known})")
    return optuna.load_study(study_name=ref.study_name, storage=storage)


def storage_url(study: optuna.Study) -> str:
    """The (masked) URL of an open study's storage, or the storage's kind where it has no URL."""
    storage: Any = study._storage
    backend = getattr(storage, "_backend", storage)  # Optuna wraps RDB storages in a cache
    url = getattr(backend, "url", None)
    if isinstance(url, str) and url:
        return mask_url(url)
    path = getattr(getattr(backend, "_backend", None), "_file_path", None)  # JournalStorage(JournalFileBackend)
    if isinstance(path, str) and path:
        return f"journal://{path}"
    return type(backend).__name__


def study_info(study: optuna.Study) -> StudyInfo:
    """Objectives, directions, phase and planned trial count of ``study``."""
    attrs = study.user_attrs
    directions = [d.name.lower() for d in study.directions]
    names = attrs.get(STUDY.OBJECTIVES) or study.metric_names or []
    if len(names) != len(directions):
        names = ["value"] if len(directions) == 1 else [f"objective_{i}" for i in range(len(directions))]
    cfg = attrs.get(STUDY.STUDY_CONFIG) or {}
    save_dir = attrs.get(STUDY.SAVE_DIR)
    return StudyInfo(
        name=study.study_name,
        directions=directions,
        objectives=[str(n) for n in names],
        phase=str(attrs.get(STUDY.PHASE) or "study"),
        n_trials=planned_trials(cfg, attrs.get(STUDY.PHASE)),
        study_config=cfg if isinstance(cfg, dict) else {},
        save_dir=Path(save_dir) if save_dir else None,
    )


def planned_trials(cfg: Any, phase: str | None = None) -> int | None:
    """``n_trials`` from a study config dict: the current phase's entry, the top level, or ``budget.n_trials``."""
    if not isinstance(cfg, dict):
        return None
    for holder in (_phase_entry(cfg, phase), cfg, cfg.get("budget")):  # the phase's own budget wins
        if isinstance(holder, dict) and isinstance(holder.get("n_trials"), int) and holder["n_trials"] > 0:
            return int(holder["n_trials"])
    return None


def _phase_entry(cfg: dict[str, Any], phase: str | None) -> dict[str, Any] | None:
    phases = cfg.get("phases")
    if not phase or not phases:
        return None
    if isinstance(phases, dict):
        entry = phases.get(phase)
        return entry if isinstance(entry, dict) else None
    for entry in phases if isinstance(phases, list) else []:
        if isinstance(entry, dict) and entry.get("name") == phase:
            return entry
    return None
