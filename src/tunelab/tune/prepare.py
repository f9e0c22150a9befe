"""Preparing a study: check the input before any storage file exists, open (or resume) the Optuna
study under its name, and record what it searches — everything :func:`tunelab.tune.tune` does
before the first trial."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.config.study import PrunerConfig, SamplerConfig, StudyConfig
from tunelab.errors import UserError
from tunelab.results.attrs import STUDY
from tunelab.results.study import StudyWriter
from tunelab.tune.checks import (
    check_budget,
    check_enqueue,
    check_history,
    check_objectives,
    data_task,
    enqueue,
    known_keys,
    pruner_for,
    read_enqueue,
)
from tunelab.tune.execution.objective import DataCache
from tunelab.tune.execution.owners import open_session, reap_orphans
from tunelab.tune.execution.workers import worker_seed
from tunelab.tune.naming import given_group, phase_fixed, resume_refusal, study_name_for
from tunelab.tune.options import TuneOptions
from tunelab.tune.reporting.reporter import TuneStart
from tunelab.tune.space import FAMILY_PARAM, SearchSpace, build_space
from tunelab.tune.space.phases import load_best_params
from tunelab.tune.space.portfolio import portfolio_for
from tunelab.tune.study import (
    canonical_url,
    default_storage,
    is_rdb,
    local_file,
    make_pruner,
    make_sampler,
    make_storage,
    mask_url,
    open_study,
    study_exists,
)

if TYPE_CHECKING:
    import optuna

__all__ = ["PreparedStudy", "prepare_study"]

log = logging.getLogger(__name__)


@dataclass
class _Checked:
    """The input, checked before any storage file is created (so bad input leaves nothing behind)."""

    opts: TuneOptions
    pack_size: int | str
    url: str
    shown: str
    cache: DataCache
    first: SearchSpace
    task: str
    picked: str
    objectives: list[str]
    directions: list[str]
    pruner: PrunerConfig
    given: dict[str, Any] | None
    queued: list[Any]
    queued_from: str
    base: str
    cfg: StudyConfig  # the study as run (no model named: the default portfolio)
    portfolio: list[dict[str, Any]]  # its known-good configurations, queued first
    budget: str  # the header's budget line


@dataclass
class PreparedStudy:
    """An opened study, ready for its trials: what runs them needs, and the header to show."""

    study: optuna.Study
    space: SearchSpace
    objectives: list[str]
    study_dir: Path
    url: str
    shown: str
    cache: DataCache
    sampler: SamplerConfig
    pruner: PrunerConfig
    n_trials: int | None
    pack_size: int | str
    journal: tuple[int, int, int] | None  # our heartbeat settings on a journal storage
    session: Any
    writer: StudyWriter
    resolved: dict[str, Any]
    family: str | None
    start: TuneStart
    opts: TuneOptions  # the options as run (a grid sampler without --grid searches the first grid)
    cfg: StudyConfig  # the study as run (no model named: the default portfolio)
    deadline: float | None = None  # the study's timeout as a clock time: running trials stop at it
    task: str = "classification"  # the data's task
    fit_reference: Callable[[], None] | None = None  # fits the MiniRocket reference (None: none to fit)


def prepare_study(cfg: StudyConfig, opts: TuneOptions, data: Any | None = None) -> PreparedStudy:
    """Check ``cfg`` and ``opts``, open (or resume) the study and record what it searches."""
    started = time.time()  # the budget's clock: data, the reference and the trials all count
    checked = _check(cfg, opts, data)
    p = _open(checked.cfg, checked)
    timeout = checked.cfg.budget.timeout
    return replace(p, deadline=None if timeout is None else started + timeout)


def _first_grid(cfg: StudyConfig, opts: TuneOptions) -> TuneOptions:
    """`sampler: grid` with named grids and no space (seed 002): search the first grid, not the
    default space (whose continuous ranges the grid sampler cannot enumerate)."""
    if opts.grid is None and opts.phase is None and cfg.sampler.name == "grid" and cfg.space is None and cfg.grids:
        opts = replace(opts, grid=next(iter(cfg.grids)))
        log.warning(
            "%s: sampler grid without --grid: searching the first grid, '%s' (grids: %s; pass --grid NAME)",
            opts.source,
            opts.grid,
            ", ".join(cfg.grids),
        )
    return opts


def _check(cfg: StudyConfig, opts: TuneOptions, data: Any | None) -> _Checked:
    if opts.workers < 1:
        raise UserError(f"--workers {opts.workers}: use 1 or more")
    from tunelab.tune.execution.packs import default_pack_size, parse_pack_size

    if opts.pack_size is None:
        pack_size = default_pack_size(cfg.base.device, opts.workers)
    else:
        pack_size = parse_pack_size(opts.pack_size)
        if pack_size != 1 and opts.workers > 1:
            raise UserError("--pack-size with --workers: use one or the other (a pack already fills the device)")
    url = cfg.storage or default_storage(Path(opts.save_dir))
    shown = mask_url(url)
    cache = DataCache(data)
    opts = _first_grid(cfg, opts)
    first = build_space(cfg, phase=opts.phase, grid=opts.grid, source=opts.source)
    task, picked, size = data_task(first, cache)
    cfg, portfolio, budget = portfolio_for(cfg, opts, task, size)
    if portfolio:
        first = build_space(cfg, source=opts.source)
    first.check_values(opts.source)
    objectives, directions = cfg.objective.resolved(task)
    check_objectives(objectives, task, opts.source)
    pruner = pruner_for(cfg, objectives, opts.source)
    given = load_best_params(opts.best_params, cfg, opts.phase) if opts.best_params is not None else None
    queued, queued_from = read_enqueue(opts.enqueue)
    if queued:  # a typo fails here; whether a key fits this phase needs the earlier phases' values (below)
        check_enqueue(queued, queued_from, known_keys(first) | known_keys(build_space(cfg, source=opts.source)))
    base = opts.study_name or cfg.name or "tune"
    file = local_file(url)
    if opts.resume and file is not None and not file.exists():  # nothing to resume, and no file to create
        raise resume_refusal(opts, base, shown)
    if opts.artifacts:  # refused before the storage (and study) exist
        from tunelab.results.artifacts import check_url

        opts = replace(opts, artifacts=check_url(opts.artifacts, write=True))
    return _Checked(
        opts,
        pack_size,
        url,
        shown,
        cache,
        first,
        task,
        picked,
        objectives,
        directions,
        pruner,
        given,
        queued,
        queued_from,
        base,
        cfg,
        portfolio,
        budget,
    )


def _open(cfg: StudyConfig, c: _Checked) -> PreparedStudy:
    import optuna

    opts = c.opts
    storage = make_storage(
        c.url, heartbeat_interval=cfg.heartbeat_interval, grace_period=cfg.grace_period, max_retry=cfg.max_retry
    )
    resumed_name = study_name_for(cfg, opts, storage, c.base, c.shown, None) if opts.resume else None
    if resumed_name is not None and opts.best_params is None and study_exists(storage, resumed_name):
        old = optuna.load_study(study_name=resumed_name, storage=storage)
        fixed, head = dict(old.user_attrs.get(STUDY.FIXED_PARAMS) or {}), None
    elif c.given is not None:
        fixed, head = c.given, given_group(opts, cfg, c.base)
    else:
        fixed, head = phase_fixed(cfg, opts, storage, c.base, c.shown)
    name = resumed_name or study_name_for(cfg, opts, storage, c.base, c.shown, head)
    space = build_space(cfg, phase=opts.phase, grid=opts.grid, fixed=fixed, locked=opts.locked, source=opts.source)
    given_queue = [
        *c.queued,
        *({k: v for k, v in p.items() if k in space.params or k == FAMILY_PARAM} for p in c.portfolio),
    ]
    check_enqueue(given_queue, c.queued_from, known_keys(space))  # before the study exists
    queued = [{k: v for k, v in params.items() if k not in space.fixed} for params in given_queue]
    n_existing = (
        len(storage.get_all_trials(storage.get_study_id_from_name(name), deepcopy=False))
        if opts.resume and study_exists(storage, name)
        else 0
    )
    sampler_cfg = SamplerConfig(name="grid") if opts.grid is not None else cfg.sampler
    grid_space = space.grid_search_space() if sampler_cfg.name == "grid" else None
    if c.pack_size != 1 and sampler_cfg.name == "tpe" and "constant_liar" not in sampler_cfg.options:
        # trials asked together should not all land on one point: TPE assumes the running ones did badly
        sampler_cfg = sampler_cfg.model_copy(update={"options": {**sampler_cfg.options, "constant_liar": True}})
    sampler = make_sampler(sampler_cfg, worker_seed(cfg.seed, 0, n_existing), len(c.objectives), grid_space)
    study = open_study(
        storage,
        name,
        directions=c.directions,
        sampler=sampler,
        pruner=make_pruner(c.pruner),
        resume=opts.resume,
        shown_storage=c.shown,
    )
    return _record(cfg, c, study, space, sampler_cfg, n_existing, queued)


def _record(
    cfg: StudyConfig,
    c: _Checked,
    study: optuna.Study,
    space: SearchSpace,
    sampler_cfg: SamplerConfig,
    n_existing: int,
    queued: list[dict[str, Any]],
) -> PreparedStudy:
    """Store what the study searches (its attributes, study.yaml) and start its directory."""
    opts, name = c.opts, study.study_name
    study_dir, stored_url = Path(opts.save_dir) / name, canonical_url(c.url)
    grid_size = space.size() if opts.grid is not None else None
    n_trials = cfg.budget.trials(grid_size)
    planned = None if n_trials is None else n_existing + n_trials  # what the monitor's ETA counts to
    resolved = _resolved_yaml(cfg, space, c.objectives, c.directions, stored_url)
    attrs = _study_attrs(c, space, resolved, planned, study_dir)
    if opts.resume:
        check_history(study, space)
        check_budget(study, space, cfg)
    _set_attrs(study, attrs, opts.resume)
    journal, session = _join(cfg, c, study)
    fit_ref = None
    if c.opts.reference and needs_reference(study, c.task):
        fit_ref = partial(fit_reference, study, c.first, c.cache, study_dir)
    writer = StudyWriter(study_dir)
    writer.start(name, stored_url, mask_url(stored_url), resolved)
    start = TuneStart(
        study_name=name,
        storage=c.shown,
        study_dir=study_dir,
        n_trials=n_trials,
        timeout=cfg.budget.timeout,
        objectives=c.objectives,
        directions=c.directions,
        sampler=sampler_cfg.name,
        pruner=c.pruner.name,
        phase=opts.phase,
        fixed=dict(space.fixed),
        grid=opts.grid,
        grid_size=grid_size,
        space_size=space.size(),
        n_params=space.n_searched(),
        n_existing=n_existing,
        n_enqueued=enqueue(study, queued),
        workers=opts.workers,
        resumed=opts.resume,
        defaults=c.picked,
        budget=c.budget,
        pack_size=c.pack_size,
        reference=fit_ref is not None,
    )
    family = space.family().label if not space.searches_family else None
    return PreparedStudy(
        study,
        space,
        c.objectives,
        study_dir,
        c.url,
        c.shown,
        c.cache,
        sampler_cfg,
        c.pruner,
        n_trials,
        c.pack_size,
        journal,
        session,
        writer,
        resolved,
        family,
        start,
        opts,
        cfg,
        task=c.task,
        fit_reference=fit_ref,
    )


def _study_attrs(
    c: _Checked, space: SearchSpace, resolved: dict[str, Any], planned: int | None, study_dir: Path
) -> dict[str, Any]:
    """The study's user attributes: what it searches, where it lives, and its budget as planned."""
    opts = c.opts
    return {
        STUDY.OBJECTIVES: c.objectives,
        STUDY.DIRECTIONS: c.directions,
        STUDY.PHASE: opts.phase,
        STUDY.STUDY_CONFIG: {
            **resolved,
            "budget": {**resolved["budget"], "n_trials": planned},
            "resolved_space": _space_record(space),
        },
        STUDY.SAVE_DIR: str(study_dir.resolve()),
        STUDY.FIXED_PARAMS: space.fixed,
        STUDY.GRID: opts.grid,
        STUDY.FAMILIES: space.families,
        **({STUDY.ARTIFACTS: opts.artifacts} if opts.artifacts else {}),  # resumed without it: the stored one stays
    }


def _join(cfg: StudyConfig, c: _Checked, study: optuna.Study) -> tuple[tuple[int, int, int] | None, Any]:
    """Name the metrics, fail trials of dead runs, and open this run's session."""
    import optuna

    if study.metric_names != c.objectives:  # optuna-dashboard then says "val_f1", not "Objective 0"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(c.objectives)
    journal = None if is_rdb(c.url) else (cfg.heartbeat_interval, cfg.grace_period, cfg.max_retry)
    if journal is not None:
        from tunelab.tune.execution.heartbeat import reap_stale

        reap_stale(study, cfg.grace_period, cfg.max_retry)
    session = open_session(study)
    reap_orphans(study, cfg.max_retry, me=session)  # trials of a killed run: FAIL now, not after the grace period
    return journal, session


def _resolved_yaml(
    cfg: StudyConfig, space: SearchSpace, objectives: list[str], directions: list[str], storage: str
) -> dict[str, Any]:
    """study.yaml: the StudyConfig that ran, loadable again (space and objective made explicit)."""
    data = cfg.model_dump(mode="json", exclude_none=False)
    if cfg.space is None:
        data["space"] = {
            k: v.model_dump(mode="json", exclude_defaults=True) for k, v in build_space(cfg).params.items()
        }
    data["objective"] = {"metrics": objectives, "directions": directions}
    data["storage"] = mask_url(storage)
    return data


def _space_record(space: SearchSpace) -> dict[str, Any]:
    return {
        "params": {k: v.model_dump(mode="json", exclude_defaults=True) for k, v in space.params.items()},
        "families": space.families,
        "grid": space.grid,
    }


def _set_attrs(study: optuna.Study, attrs: dict[str, Any], resumed: bool) -> None:
    if resumed:
        old = (study.user_attrs.get(STUDY.STUDY_CONFIG) or {}).get("resolved_space")
        new = attrs[STUDY.STUDY_CONFIG]["resolved_space"]
        if old is not None and old != new:
            before, after = old.get("params", {}), new.get("params", {})
            changes = [f"+{k}" for k in after if k not in before] + [f"-{k}" for k in before if k not in after]
            changes += [f"~{k}" for k in after if k in before and after[k] != before[k]]
            if old.get("families") != new.get("families"):
                changes.append("~model families")
            log.warning(
                "the search space changed since study %s started (%s); earlier trials stay in its history",
                study.study_name,
                ", ".join(changes) or "grid/families",
            )
    for key, value in attrs.items():
        study.set_user_attr(key, value)


def needs_reference(study: optuna.Study, task: str) -> bool:
    """Whether a study of ``task`` takes a MiniRocket reference and has none yet (a resumed study
    keeps the one it has)."""
    from tunelab.baselines import reference

    return reference.ENABLED and task in reference.REFERENCE_TASKS and not study.user_attrs.get(STUDY.REFERENCE)


def fit_reference(study: optuna.Study, space: SearchSpace, cache: DataCache, study_dir: Path) -> None:
    """Fit MiniRocket once on the base config's split and keep it as a study attribute, its
    decision values in ``study_dir`` for the study's ensemble.  The runner calls it (through
    ``PreparedStudy.fit_reference``) once the header is shown: on large data on a CPU it takes a minute."""
    from tunelab.baselines import reference

    base = space.to_config({FAMILY_PARAM: space.families[0]} if space.searches_family and space.families else {})
    log.info("fitting the MiniRocket reference on the study's split")
    found = reference.fit_study_reference(
        cache.get(base), seed=base.seed, device=base.device, keep=study_dir / reference.DECISIONS_FILE
    )
    if found is not None:
        study.set_user_attr(STUDY.REFERENCE, found)
