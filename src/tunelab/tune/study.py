"""Where a study lives and how it searches: storages, samplers, pruners, naming, resume.

Storage URLs, masking and opening live in :mod:`tunelab.storage`; the names are re-exported here.
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from typing import TYPE_CHECKING, Any

from tunelab.config.search import optuna_class
from tunelab.config.study import PrunerConfig, SamplerConfig
from tunelab.errors import UserError
from tunelab.registry import PRUNERS, SAMPLERS
from tunelab.storage import (  # noqa: F401  (re-exported: callers import them from here)
    canonical_url,
    default_storage,
    has_password,
    is_rdb,
    journal_path,
    local_file,
    make_storage,
    mask_url,
    study_exists,
)

if TYPE_CHECKING:
    import optuna

__all__ = [
    "canonical_url",
    "default_storage",
    "find_latest_study",
    "has_password",
    "is_rdb",
    "journal_path",
    "local_file",
    "make_pruner",
    "make_sampler",
    "make_storage",
    "mask_url",
    "new_study_name",
    "nothing_to_resume",
    "open_study",
    "study_exists",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- samplers / pruners


def make_sampler(
    cfg: SamplerConfig, seed: int | None, n_objectives: int = 1, grid_space: dict[str, list[Any]] | None = None
) -> optuna.samplers.BaseSampler:
    """Build the sampler; ``seed`` should differ between workers and resumed runs."""
    import optuna

    if n_objectives > 1 and cfg.name in ("cmaes",):
        raise UserError(f"sampler {cfg.name} optimizes one objective; use nsga2, tpe, gp or random for several")
    if cfg.name == "cmaes":
        try:
            import cmaes  # noqa: F401  (Optuna imports it lazily, mid-trial; fail here instead)
        except ImportError:
            raise UserError("sampler cmaes needs the 'cmaes' package: pip install cmaes") from None
    opts = {**SAMPLERS.get(cfg.name).defaults, **cfg.options}
    cls = optuna_class(SAMPLERS, cfg.name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if cfg.name == "grid":
            if not grid_space:
                raise UserError("the grid sampler needs a discrete space; define grids: and use --grid NAME")
            return cls(grid_space, seed=seed)  # type: ignore[no-any-return]
        if cfg.name == "tpe" and n_objectives > 1:
            opts.pop("group", None)
        return cls(seed=seed, **opts)  # type: ignore[no-any-return]


def make_pruner(cfg: PrunerConfig) -> optuna.pruners.BasePruner:
    """Build the pruner, with tunelab's defaults under the user's options."""
    opts = {**PRUNERS.get(cfg.name).defaults, **cfg.options}
    try:
        return optuna_class(PRUNERS, cfg.name)(**opts)  # type: ignore[no-any-return]
    except (TypeError, ValueError) as exc:
        raise UserError(f"pruner {cfg.name}: {exc}; fix pruner.options") from None


# --------------------------------------------------------------------------- names / resume


def new_study_name(base: str) -> str:
    """A fresh study name: ``<base>-<YYYYmmdd-HHMMSS>`` (seed 001's timestamped names)."""
    return f"{base}-{time.strftime('%Y%m%d-%H%M%S')}"


_STAMP = re.compile(r"-\d{8}-\d{6}$")


def find_latest_study(storage: optuna.storages.BaseStorage, base: str, phase: str | None = None) -> str | None:
    """The newest study called ``<base>`` or ``<base>-<timestamp>`` (with ``/<phase>`` if given)."""
    import optuna

    candidates = []
    for s in optuna.get_all_study_summaries(storage, include_best_trial=False):
        name = s.study_name
        head, sep, tail = name.rpartition("/") if phase is not None else (name, "", "")
        if phase is not None and (not sep or tail != phase):
            continue
        if head == base or (head.startswith(base + "-") and _STAMP.search(head) and _STAMP.sub("", head) == base):
            candidates.append((s.datetime_start.timestamp() if s.datetime_start else 0.0, s._study_id, name))
    return max(candidates)[2] if candidates else None


def nothing_to_resume(name: str, shown_storage: str) -> UserError:
    """The refusal of ``--resume`` for study ``name``, which the storage does not hold."""
    return UserError(
        f"--resume: no study '{name}' in {shown_storage}; check --study-name and --storage (or drop --resume to start one)"
    )


def open_study(
    storage: optuna.storages.BaseStorage,
    name: str,
    *,
    directions: list[str],
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    resume: bool,
    shown_storage: str,
) -> optuna.Study:
    """Create a new study, or load an existing one with ``resume``.

    A new study whose name exists is refused (so two runs never mix by accident); resuming a
    study that does not exist is an error that names the storage.
    """
    import optuna

    exists = study_exists(storage, name)
    if resume:
        if not exists:
            raise nothing_to_resume(name, shown_storage)
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        if [d.name.lower() for d in study.directions] != directions:
            raise UserError(
                f"--resume: study '{name}' optimizes {[d.name.lower() for d in study.directions]}, not {directions}; keep the objective it started with"
            )
        return study
    if exists:
        raise UserError(
            f"study '{name}' already exists in {shown_storage}; pass --resume to continue it or choose another --study-name"
        )
    return optuna.create_study(storage=storage, study_name=name, directions=directions, sampler=sampler, pruner=pruner)  # type: ignore[arg-type]
