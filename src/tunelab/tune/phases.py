"""Phases (seed 001): tune a few parameters at a time, earlier phases' best values fixed.

Each phase is its own study, named ``<study>/<phase>``.  ``--phase NAME`` takes the fixed
values from ``--best-params FILE`` (a ``best_params.json``), or, when no file is given, from the
previous phase's study in the same storage (the newest ``<study>[-<timestamp>]/<previous>``).
A phase's ``best_params.json`` holds its own best values *and* the ones it was given, so the
chain carries everything forward.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.config import load_mapping
from tunelab.errors import UserError
from tunelab.registry import closest
from tunelab.results.attrs import STUDY
from tunelab.results.study import best_trial
from tunelab.tune.defaults import default_space
from tunelab.tune.space import FAMILY_PARAM
from tunelab.tune.spec import StudyConfig

if TYPE_CHECKING:
    import optuna

__all__ = ["fixed_from_study", "load_best_params", "previous_phase", "study_params"]

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


def load_best_params(source: str | Path | dict[str, Any], cfg: StudyConfig) -> dict[str, Any]:
    """Read a best_params.json (or take a dict) and check every key is a parameter of the study."""
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


def previous_phase(cfg: StudyConfig, phase: str) -> str | None:
    """The phase listed before ``phase`` in the study file (None for the first)."""
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
