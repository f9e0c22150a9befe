"""Phases (seed 001): tune a few parameters at a time, earlier phases' best values fixed.

Each phase is its own study, named ``<study>/<phase>``.  ``--phase NAME`` takes the fixed
values from ``--best-params FILE...`` (best_params.json files: later phases override earlier ones),
or, when no file is given, from the previous phase's study in the same storage (the newest
``<study>[-<timestamp>]/<previous>``).  The phase's study joins the group of the file or study it
started from, so one phased search lands in one folder.
A phase's ``best_params.json`` holds its own best values *and* the ones it was given, so the
chain carries everything forward.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.config import load_mapping
from tunelab.config.defaults import default_space
from tunelab.config.study import StudyConfig
from tunelab.errors import UserError
from tunelab.registry import closest
from tunelab.results.attrs import STUDY
from tunelab.results.study import best_trial
from tunelab.tune.space import FAMILY_PARAM

if TYPE_CHECKING:
    import optuna

__all__ = [
    "best_params_group",
    "fixed_from_study",
    "load_best_params",
    "phase_files",
    "previous_phase",
    "searches_all",
    "study_params",
]

log = logging.getLogger(__name__)


def study_params(cfg: StudyConfig) -> set[str]:
    """Every parameter this study file can search: space, phases, grids, model.name."""
    keys = set(cfg.space if cfg.space is not None else default_space(cfg.family_names()))
    for phase in cfg.phases.values():
        if isinstance(phase, dict):
            keys |= set(phase)
    for grid in cfg.grids.values():
        keys |= set(grid)
    return keys | {FAMILY_PARAM}


def phase_files(
    sources: Sequence[str | Path], cfg: StudyConfig, phase: str | None = None
) -> list[tuple[Path, str | None]]:
    """Several best_params.json (a shell glob such as ``runs/*/phase*/best_params.json``), each
    with its phase, in the order they apply: by the phase they came from (the folder tunelab wrote
    them in) in the study file's order, else as given; a file of ``phase`` itself or of a later
    phase is skipped (its values are what this phase searches, or depend on it)."""
    names = list(cfg.phases)
    ranked = []
    for i, source in enumerate(sources):
        path = Path(source)
        owner = path.parent.name if path.parent.name in cfg.phases else None
        rank = names.index(owner) if owner is not None else -1
        if phase in cfg.phases and owner is not None and rank >= names.index(phase):
            log.warning("--best-params %s: skipped (phase %s does not come before %s)", path, owner, phase)
            continue
        ranked.append((rank, i, path, owner))
    return [(path, owner) for _, _, path, owner in sorted(ranked, key=lambda r: (r[0], r[1]))]


def best_params_group(sources: Sequence[str | Path], cfg: StudyConfig, base: str) -> str | None:
    """The study group (``<base>-<timestamp>``) a phase's best_params.json lies in, so that the
    next phase joins it instead of starting a new group."""
    for path, owner in reversed(phase_files(sources, cfg)):
        group = path.parent.parent.name
        if owner is not None and (group == base or group.startswith(base + "-")):
            return group
    return None


def load_best_params(
    source: str | Path | dict[str, Any] | Sequence[str | Path], cfg: StudyConfig, phase: str | None = None
) -> dict[str, Any]:
    """Read best_params.json file(s) (or take a dict) and check every key is a parameter of the
    study; of several files, later phases' values override earlier ones' (:func:`phase_files`)."""
    if not isinstance(source, (str, Path, dict)):
        merged: dict[str, Any] = {}
        for path, _ in phase_files(source, cfg, phase):
            merged.update(load_best_params(path, cfg))
        return merged
    if isinstance(source, dict):
        data, where = dict(source), "--best-params"
    else:
        path = Path(source)
        if not path.is_file():
            raise UserError(f"--best-params {path}: file not found; pass the best_params.json of an earlier phase")
        try:
            data = json.loads(path.read_text()) if path.suffix == ".json" else load_mapping(path)
        except json.JSONDecodeError as exc:
            raise UserError(f"--best-params {path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
        where = f"--best-params {path}"
    if not isinstance(data, dict):
        raise UserError(f"{where}: must be a JSON object of parameter → value")
    known = study_params(cfg)
    for key in data:
        if key not in known:
            raise UserError(
                f"{where}: unknown parameter '{key}'{closest(key, sorted(known))}; this study's parameters: {', '.join(sorted(known))}"
            )
    return data


def searches_all(cfg: StudyConfig, phase: str) -> bool:
    """Whether ``phase`` searches the whole space ("all"): it fixes nothing from earlier phases."""
    chosen = cfg.phases[phase]
    return chosen == "all" or (isinstance(chosen, list) and "all" in chosen)


def previous_phase(cfg: StudyConfig, phase: str) -> str | None:
    """The phase whose best values ``phase`` starts from: the one listed before it, or None for the
    first and for a phase that searches everything (``full: all`` and ``full_with_model: [all,
    model.name]`` are alternatives to the chain, not each other's successors)."""
    if searches_all(cfg, phase):
        return None
    names = list(cfg.phases)
    i = names.index(phase)
    return names[i - 1] if i > 0 else None


def fixed_from_study(study: optuna.Study) -> dict[str, Any]:
    """What a finished phase hands to the next: its fixed values plus its best trial's params."""
    fixed = dict(study.user_attrs.get(STUDY.FIXED_PARAMS) or {})
    best = best_trial(study)
    if best is None:
        log.warning(
            "study %s has no completed trial; the next phase starts from its fixed values only", study.study_name
        )
        return fixed
    return {**fixed, **best.params}
