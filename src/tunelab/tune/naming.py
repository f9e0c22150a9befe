"""A study's name: a new timestamped one, the newest to resume, or the group of an earlier phase
(whose best values the phase then fixes)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tunelab.config.study import StudyConfig
from tunelab.errors import UserError
from tunelab.tune.options import TuneOptions
from tunelab.tune.space.phases import best_params_group, fixed_from_study, previous_phase
from tunelab.tune.study import find_latest_study, new_study_name, nothing_to_resume, study_exists

__all__ = ["given_group", "phase_fixed", "resume_refusal", "study_name_for"]

log = logging.getLogger(__name__)


def resume_refusal(opts: TuneOptions, base: str, shown: str) -> UserError:
    suffix = f"/{opts.phase}" if opts.phase else ""
    if opts.study_name:
        return nothing_to_resume(opts.study_name + suffix, shown)
    return UserError(
        f"--resume: no study named '{base}' or '{base}-<timestamp>'{suffix} in {shown}; pass --study-name NAME or --storage URL"
    )


def study_name_for(
    cfg: StudyConfig, opts: TuneOptions, storage: Any, base: str, shown: str, head_hint: str | None
) -> str:
    suffix = f"/{opts.phase}" if opts.phase else ""
    if opts.study_name:
        return opts.study_name + suffix
    if opts.resume:
        found = find_latest_study(storage, base, opts.phase)
        if found is None:
            raise resume_refusal(opts, base, shown)
        return found
    if head_hint is not None and not study_exists(storage, head_hint + suffix):
        return head_hint + suffix
    name, i = new_study_name(base), 1
    while study_exists(storage, name + suffix):  # two runs in the same second
        name, i = f"{new_study_name(base)}-{i}", i + 1
    return name + suffix


def phase_fixed(
    cfg: StudyConfig, opts: TuneOptions, storage: Any, base: str, shown: str
) -> tuple[dict[str, Any], str | None]:
    """Values fixed by earlier phases, and the study-name head of the previous phase (to group)."""
    import optuna

    if opts.phase is None:
        return {}, None
    prev = previous_phase(cfg, opts.phase)
    if prev is None:
        return {}, _alternative_group(cfg, opts, storage, base)
    if opts.study_name:
        prev_name: str | None = f"{opts.study_name}/{prev}"
        if not study_exists(storage, prev_name):  # type: ignore[arg-type]
            prev_name = None
    else:
        prev_name = find_latest_study(storage, base, prev)
    if prev_name is None:
        log.warning(
            "phase %s: no study of the previous phase '%s' in %s; starting from the base config (pass --best-params FILE to fix values)",
            opts.phase,
            prev,
            shown,
        )
        return {}, None
    fixed = fixed_from_study(optuna.load_study(study_name=prev_name, storage=storage))
    log.info("phase %s: fixed %d values from study %s", opts.phase, len(fixed), prev_name)
    return fixed, prev_name.rpartition("/")[0]


def given_group(opts: TuneOptions, cfg: StudyConfig, base: str) -> str | None:
    """The study group of the --best-params file(s): the phase joins it."""
    files = opts.best_params
    if files is None or isinstance(files, dict) or opts.study_name:
        return None
    return best_params_group([files] if isinstance(files, (str, Path)) else list(files), cfg, base)


def _alternative_group(cfg: StudyConfig, opts: TuneOptions, storage: Any, base: str) -> str | None:
    """A phase that searches everything (``full``) joins the newest group of this phased search,
    unless that group already ran it; the first phase always starts a new group."""
    assert opts.phase is not None
    if opts.study_name or list(cfg.phases).index(opts.phase) == 0:
        return None
    found = [find_latest_study(storage, base, p) for p in cfg.phases if p != opts.phase]
    heads = [f.rpartition("/")[0] for f in found if f is not None]
    return max(heads) if heads else None  # <base>-<YYYYmmdd-HHMMSS>: the newest sorts last
