"""Run a study end to end.

:func:`tune` resolves the study's name and the values earlier phases fixed, opens (or resumes) the
Optuna study, runs the trials here or on worker processes, keeps the study directory up to date
as trials finish (:meth:`~tunelab.results.study.StudyWriter.refresh`), and analyses the result.
:func:`auto_tune_all` runs one study per model family (seed 000's ``--auto-tune-all``).
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tunelab.budget import DataSize, data_size, resolve_defaults
from tunelab.errors import UserError
from tunelab.registry import closest
from tunelab.results.attrs import STUDY, TRIAL
from tunelab.results.io import write_text
from tunelab.results.study import StudyWriter, best_trial
from tunelab.train.callbacks import Callback
from tunelab.tune.deadline import StudyDeadline, remaining
from tunelab.tune.families import SEED000_FAMILIES
from tunelab.tune.objective import DataCache, Objective, TrialFailed
from tunelab.tune.owners import close_session, open_session, reap_orphans
from tunelab.tune.phases import best_params_group, fixed_from_study, load_best_params, previous_phase
from tunelab.tune.report import trial_line
from tunelab.tune.space import FAMILY_PARAM, InvalidSample, SearchSpace, build_space
from tunelab.tune.spec import PrunerConfig, SamplerConfig, StudyConfig
from tunelab.tune.study import (
    canonical_url,
    default_storage,
    find_latest_study,
    is_rdb,
    local_file,
    make_pruner,
    make_sampler,
    make_storage,
    mask_url,
    new_study_name,
    nothing_to_resume,
    open_study,
    study_exists,
)
from tunelab.tune.workers import WorkerJob, run_workers, worker_seed

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

__all__ = [
    "LogReporter",
    "Reporter",
    "TuneOptions",
    "TuneResult",
    "TuneStart",
    "auto_tune_all",
    "comparison_file",
    "trial_context",
    "tune",
]

log = logging.getLogger(__name__)

_TASK_METRICS = {
    "classification": ("loss", "acc", "f1"),
    "regression": ("loss", "mse", "mae"),
    "seq2seq": ("loss", "mse", "mae", "snr_db", "snr_gain_db"),
}


@dataclass
class TuneOptions:
    """How to run a study file (the command line's choices)."""

    phase: str | None = None
    grid: str | None = None
    best_params: str | Path | dict[str, Any] | Sequence[str | Path] | None = None  # several: later phases win
    resume: bool = False
    study_name: str | None = None  # exact name; default: the study file's name + a timestamp
    save_dir: str | Path = "runs"
    workers: int = 1
    pack_size: int | str = 1  # trials trained at once as one stacked computation ("auto": by device memory)
    enqueue: str | Path | list[dict[str, Any]] | None = None
    locked: frozenset[str] = frozenset()  # config keys set on the command line: never searched
    plugins: tuple[str, ...] = ()  # re-imported by worker processes
    report: bool = True  # run the analysis (report.html, plots) at the end
    tracking: Any = None  # tunelab.track.TrackingConfig
    source: str = "study"  # the study file, for messages
    reference: bool = True  # fit MiniRocket once on a classification study's split (tunelab[baselines])
    portfolio: bool = False  # no model named: search the default portfolio (tunelab.tune.portfolio)


@dataclass
class TuneStart:
    """What is about to run (for the console header and progress bar)."""

    study_name: str
    storage: str  # masked
    study_dir: Path
    n_trials: int | None
    timeout: float | None
    objectives: list[str]
    directions: list[str]
    sampler: str
    pruner: str
    phase: str | None
    fixed: dict[str, Any]
    grid: str | None
    grid_size: int | None
    space_size: int | None
    n_params: int
    n_existing: int
    n_enqueued: int
    workers: int
    resumed: bool
    defaults: str = ""  # the data-aware defaults line (tunelab.budget)
    budget: str = ""  # "budget: 10 min (default; --timeout to change)"


@dataclass
class TuneResult:
    """What a study found."""

    study_name: str
    study_dir: Path
    storage: str  # masked
    objectives: list[str]
    directions: list[str]
    states: dict[str, int]
    best_number: int | None = None
    best_values: list[float] | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_config: dict[str, Any] | None = None
    best_n_params: int | None = None
    best_epochs: int | None = None
    best_model: str | None = None
    pareto: list[dict[str, Any]] = field(default_factory=list)
    family: str | None = None
    reference: dict[str, Any] | None = None  # MiniRocket on the same split (classification, aeon installed)

    @property
    def best_value(self) -> float | None:
        return self.best_values[0] if self.best_values else None


class Reporter(Protocol):
    """Receives a study's progress (the CLI draws it; :class:`LogReporter` logs it)."""

    def start(self, info: TuneStart) -> None: ...

    def trial(self, study: optuna.Study, trial: FrozenTrial) -> None: ...

    def end(self, result: TuneResult) -> None: ...


class LogReporter:
    """Logs Optuna-style lines through ``logging`` (the library default)."""

    def __init__(self) -> None:
        self.objectives: list[str] = []
        self.pruner = ""

    def start(self, info: TuneStart) -> None:
        self.objectives, self.pruner = info.objectives, info.pruner
        log.info("study %s (%s): %s trials", info.study_name, info.storage, info.n_trials)

    def trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        best = best_trial(study) if len(self.objectives) == 1 else None
        log.info("%s", trial_line(trial, self.objectives, best, self.pruner))

    def end(self, result: TuneResult) -> None:
        log.info("study %s: best trial %s", result.study_name, result.best_number)


# --------------------------------------------------------------------------- helpers


class _FailureGuard:
    """Stops a study after ``limit`` failed trials in a row (a broken config fails them all)."""

    def __init__(self, limit: int | None) -> None:
        self.limit, self.run, self.message = limit, 0, ""

    def __call__(self, trial: FrozenTrial) -> bool:
        if trial.state.name == "FAIL":
            self.run += 1
        elif trial.state.name in ("COMPLETE", "PRUNED"):
            self.run = 0
        if self.limit is not None and self.run >= self.limit and not self.message:
            reason = trial.user_attrs.get(TRIAL.REASON, "unknown")
            self.message = f"{self.run} trials failed in a row (last: {reason}); stopped the study — see trials.csv and trials/*/traceback.txt"
            return True
        return False


def trial_context(
    study: optuna.Study, journal_heartbeat: tuple[int, int, int] | None, tracking: Any = None
) -> Callable[[Any, dict[str, Any]], Any]:
    """Per-trial context: our heartbeat on journal storages, tracker runs; yields extra callbacks."""

    @contextmanager
    def ctx(trial: Any, params: dict[str, Any]) -> Iterator[list[Callback]]:
        with ExitStack() as stack:
            callbacks: list[Callback] = []
            if journal_heartbeat is not None:
                from tunelab.tune.heartbeat import beating, reap_stale

                interval, grace, retry = journal_heartbeat
                reap_stale(study, grace, retry, skip=trial._trial_id)
                stack.enter_context(beating(study, trial._trial_id, interval))
            if tracking is not None:
                callbacks += stack.enter_context(
                    tracking.trial(f"trial-{trial.number}", tags={"trial": trial.number}, params=params)
                )
            yield callbacks

    return ctx


def _task(space: SearchSpace, cache: DataCache) -> tuple[str, str, DataSize]:
    """The task of the data (decides the default objective), the data-aware defaults line (what
    trials fill in that the study leaves unset) and the training split's size."""
    try:
        cfg = space.to_config({FAMILY_PARAM: space.families[0]} if space.searches_family and space.families else {})
    except InvalidSample as exc:
        raise UserError(f"the base config with the fixed values is invalid: {exc}") from None
    data = cache.get(cfg)
    size = data_size(data)
    return str(data.meta.task), resolve_defaults(cfg, size)[1], size


def check_objectives(objectives: list[str], task: str, source: str) -> None:
    """Each split objective (``val_*``, ``test_*``) must be a metric of the data's ``task``."""
    valid = _TASK_METRICS.get(task, ())
    for m in objectives:
        split, _, metric = m.partition("_")
        if split in ("val", "test") and metric not in valid:
            options = [f"val_{v}" for v in valid] + ["n_params", "seconds"]
            raise UserError(
                f"{source}: objective '{m}' does not exist for a {task} task{closest(m, options)}; use one of: {', '.join(options)}"
            )
        if split == "test":
            log.warning("objective %s selects models on the test split: the reported test score is then optimistic", m)


def _read_enqueue(source: str | Path | list[dict[str, Any]] | None) -> tuple[list[Any], str]:
    """``--enqueue FILE``'s configurations (one mapping or a list of them) and how to name them."""
    if source is None:
        return [], "--enqueue"
    if isinstance(source, list):
        return source, "--enqueue"
    import yaml

    path = Path(source)
    where = f"--enqueue {path}"
    if not path.is_file():
        raise UserError(f"{where}: file not found")
    try:
        text = path.read_text()
        items = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise UserError(f"{where}: not valid YAML/JSON ({first}); fix the syntax") from None
    if isinstance(items, dict) and "trials" in items:
        items = items["trials"]
    items = [items] if isinstance(items, dict) else items
    if not isinstance(items, list):
        raise UserError(f"{where}: expected a mapping of parameter → value, or a list of them")
    return items, where


def _check_enqueue(items: list[Any], where: str, known: set[str]) -> None:
    for i, params in enumerate(items):
        if not isinstance(params, dict):
            raise UserError(f"{where}: entry {i} must be a mapping of parameter → value")
        for key in params:
            if key not in known:
                raise UserError(
                    f"{where}: entry {i}: '{key}' is not a parameter of this study{closest(key, sorted(known))}"
                )


def _known(space: SearchSpace) -> set[str]:
    return set(space.params) | set(space.fixed) | {FAMILY_PARAM}


def _enqueue(study: optuna.Study, items: list[dict[str, Any]]) -> int:
    """Queue known configurations to run first."""
    for params in items:
        study.enqueue_trial(params, skip_if_exists=True)
    return len(items)


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


def _check_history(study: optuna.Study, space: SearchSpace) -> None:
    """A resumed study's parameters must keep their kind and choices (Optuna cannot mix them)."""
    from optuna.distributions import check_distribution_compatibility

    from tunelab.tune.space import distribution

    seen: dict[str, Any] = {}
    for t in study.get_trials(deepcopy=False):
        seen.update(t.distributions)
    new = {k: distribution(v) for k, v in space.params.items()}
    if space.searches_family:
        from optuna.distributions import CategoricalDistribution

        new[FAMILY_PARAM] = CategoricalDistribution(list(space.families or []))
    for key, dist in new.items():
        if key in seen:
            try:
                check_distribution_compatibility(seen[key], dist)
            except ValueError:
                raise UserError(
                    f"--resume: '{key}' was searched as {seen[key]} in study {study.study_name}, now as {dist}; "
                    "a categorical's choices and a parameter's kind/log scale cannot change within a study: restore them or start a new study"
                ) from None


def _pruner_for(cfg: StudyConfig, objectives: list[str], source: str) -> PrunerConfig:
    """The study's pruner; none for several objectives: Optuna prunes only single-objective trials,
    so a pruner chosen for a multi-objective study is refused rather than silently idle."""
    if len(objectives) == 1 or cfg.pruner.name == "none":
        return cfg.pruner
    if "pruner" in cfg.model_fields_set:
        raise UserError(
            f"{source}: pruner '{cfg.pruner.name}' with {len(objectives)} objectives ({', '.join(objectives)}): "
            "Optuna does not prune multi-objective trials; use --pruner none, or one objective"
        )
    return PrunerConfig(name="none")


def _check_budget(study: optuna.Study, space: SearchSpace, cfg: StudyConfig) -> None:
    """A resumed study keeps its epoch budget: trials of 30 and of 5 epochs are not comparable."""
    if "train.max_epochs" in space.params:  # searched: each trial has its own
        return
    stored = (study.user_attrs.get(STUDY.STUDY_CONFIG) or {}).get("base") or {}
    before = (stored.get("train") or {}).get("max_epochs")
    now = cfg.base.train.max_epochs
    if before is not None and before != now:
        raise UserError(
            f"--resume: study {study.study_name} trains for train.max_epochs={before}, this run for {now} (--epochs); "
            f"one study keeps one budget: drop --epochs to continue it, or start a new study with --study-name"
        )


def _resume_refusal(opts: TuneOptions, base: str, shown: str) -> UserError:
    suffix = f"/{opts.phase}" if opts.phase else ""
    if opts.study_name:
        return nothing_to_resume(opts.study_name + suffix, shown)
    return UserError(
        f"--resume: no study named '{base}' or '{base}-<timestamp>'{suffix} in {shown}; pass --study-name NAME or --storage URL"
    )


def _study_name(cfg: StudyConfig, opts: TuneOptions, storage: Any, base: str, shown: str, head_hint: str | None) -> str:
    suffix = f"/{opts.phase}" if opts.phase else ""
    if opts.study_name:
        return opts.study_name + suffix
    if opts.resume:
        found = find_latest_study(storage, base, opts.phase)
        if found is None:
            raise _resume_refusal(opts, base, shown)
        return found
    if head_hint is not None and not study_exists(storage, head_hint + suffix):
        return head_hint + suffix
    name, i = new_study_name(base), 1
    while study_exists(storage, name + suffix):  # two runs in the same second
        name, i = f"{new_study_name(base)}-{i}", i + 1
    return name + suffix


def _phase_fixed(
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


def _given_group(opts: TuneOptions, cfg: StudyConfig, base: str) -> str | None:
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


def _result(study: optuna.Study, study_dir: Path, shown: str, objectives: list[str], family: str | None) -> TuneResult:
    best = best_trial(study)
    states: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        states[t.state.name] = states.get(t.state.name, 0) + 1
    result = TuneResult(
        study.study_name,
        study_dir,
        shown,
        objectives,
        [d.name.lower() for d in study.directions],
        states,
        family=family,
        reference=study.user_attrs.get(STUDY.REFERENCE),
    )
    if best is not None:
        fixed = study.user_attrs.get(STUDY.FIXED_PARAMS) or {}
        result.best_number, result.best_values = best.number, list(best.values)
        result.best_params = {**fixed, **best.params}
        result.best_metrics = dict(best.user_attrs.get(TRIAL.METRICS) or {})
        result.best_config = best.user_attrs.get(TRIAL.CONFIG)
        result.best_n_params = best.user_attrs.get(TRIAL.N_PARAMS)
        result.best_epochs = best.user_attrs.get(TRIAL.EPOCHS)
        if (study_dir / "best_model.pt").is_file():
            result.best_model = str(study_dir / "best_model.pt")
    if len(objectives) > 1 and best is not None:
        result.pareto = [{"number": t.number, "values": list(t.values), "params": t.params} for t in study.best_trials]
    return result


def _reference(study: optuna.Study, space: SearchSpace, cache: DataCache) -> None:
    """Fit MiniRocket once on the base config's split and keep it as a study attribute (a resumed
    study keeps the one it has)."""
    from tunelab.baselines import reference

    if not reference.ENABLED or study.user_attrs.get(STUDY.REFERENCE):
        return
    base = space.to_config({FAMILY_PARAM: space.families[0]} if space.searches_family and space.families else {})
    log.info("fitting the MiniRocket reference on the study's split")
    found = reference.fit_study_reference(cache.get(base), seed=base.seed)
    if found is not None:
        study.set_user_attr(STUDY.REFERENCE, found)


def _analyze(study_dir: Path, study: optuna.Study) -> None:
    try:
        from tunelab.analysis import analyze
    except ImportError:  # the analysis package is optional at this layer
        return
    try:
        analyze(study_dir=study_dir, study=study)
    except UserError:
        raise
    except Exception:  # a plotting failure must not lose a finished study
        log.exception("the analysis of %s failed; the study itself is saved", study_dir)


# --------------------------------------------------------------------------- tune


def tune(
    cfg: StudyConfig,
    options: TuneOptions | None = None,
    *,
    data: Any | None = None,
    callbacks: Sequence[Callback] = (),
    reporter: Reporter | None = None,
) -> TuneResult:
    """Run (or resume) the study ``cfg`` and return what it found.

    Args:
        cfg: the validated study file.
        options: phase, grid, resume, names, workers... (:class:`TuneOptions`).
        data: prepared splits for every trial (default: prepared from each trial's config).
        callbacks: extra fit callbacks for every trial (in this process).
        reporter: receives progress; default logs through ``logging``.
    """
    import optuna

    t_start = time.time()  # the budget's clock: data, reference and trials all count
    opts = options or TuneOptions()
    rep = reporter or LogReporter()
    if opts.workers < 1:
        raise UserError(f"--workers {opts.workers}: use 1 or more")
    from tunelab.tune.packs import parse_pack_size

    pack_size = parse_pack_size(opts.pack_size)
    if pack_size != 1 and opts.workers > 1:
        raise UserError("--pack-size with --workers: use one or the other (a pack already fills the device)")
    save_dir = Path(opts.save_dir)
    url = cfg.storage or default_storage(save_dir)
    shown = mask_url(url)
    # the space, the data and the objectives are checked before a storage file is created, so bad
    # input leaves nothing behind (the checks after it need the studies stored there)
    cache = DataCache(data)
    if opts.grid is None and opts.phase is None and cfg.sampler.name == "grid" and cfg.space is None and cfg.grids:
        # `sampler: grid` with named grids and no space (seed 002): search the first grid, not the
        # default space (whose continuous ranges the grid sampler cannot enumerate)
        opts = replace(opts, grid=next(iter(cfg.grids)))
        log.warning(
            "%s: sampler grid without --grid: searching the first grid, '%s' (grids: %s; pass --grid NAME)",
            opts.source,
            opts.grid,
            ", ".join(cfg.grids),
        )
    first = build_space(cfg, phase=opts.phase, grid=opts.grid, source=opts.source)
    task, picked, size = _task(first, cache)
    cfg, portfolio_queue, budget_note = _portfolio(cfg, opts, task, size)
    if portfolio_queue:
        first = build_space(cfg, source=opts.source)
    first.check_values(opts.source)
    objectives, directions = cfg.objective.resolved(task)
    check_objectives(objectives, task, opts.source)
    pruner_cfg = _pruner_for(cfg, objectives, opts.source)
    given = load_best_params(opts.best_params, cfg, opts.phase) if opts.best_params is not None else None
    queued, queued_from = _read_enqueue(opts.enqueue)
    if queued:  # a typo fails here; whether a key fits this phase needs the earlier phases' values (below)
        _check_enqueue(queued, queued_from, _known(first) | _known(build_space(cfg, source=opts.source)))
    base = opts.study_name or cfg.name or "tune"
    file = local_file(url)
    if opts.resume and file is not None and not file.exists():  # nothing to resume, and no file to create
        raise _resume_refusal(opts, base, shown)
    storage = make_storage(
        url, heartbeat_interval=cfg.heartbeat_interval, grace_period=cfg.grace_period, max_retry=cfg.max_retry
    )
    resumed_name = _study_name(cfg, opts, storage, base, shown, None) if opts.resume else None
    if resumed_name is not None and opts.best_params is None and study_exists(storage, resumed_name):
        old = optuna.load_study(study_name=resumed_name, storage=storage)
        fixed, head = dict(old.user_attrs.get(STUDY.FIXED_PARAMS) or {}), None
    else:
        fixed, head = (
            (given, _given_group(opts, cfg, base))
            if given is not None
            else _phase_fixed(cfg, opts, storage, base, shown)
        )
    name = resumed_name or _study_name(cfg, opts, storage, base, shown, head)
    space = build_space(cfg, phase=opts.phase, grid=opts.grid, fixed=fixed, locked=opts.locked, source=opts.source)
    queued = [
        *queued,
        *({k: v for k, v in p.items() if k in space.params or k == FAMILY_PARAM} for p in portfolio_queue),
    ]
    _check_enqueue(queued, queued_from, _known(space))  # before the study exists
    queued = [{k: v for k, v in params.items() if k not in space.fixed} for params in queued]
    study_dir = save_dir / name

    n_existing = (
        len(storage.get_all_trials(storage.get_study_id_from_name(name), deepcopy=False))
        if opts.resume and study_exists(storage, name)
        else 0
    )
    sampler_cfg = SamplerConfig(name="grid") if opts.grid is not None else cfg.sampler
    grid_space = space.grid_search_space() if sampler_cfg.name == "grid" else None
    if pack_size != 1 and sampler_cfg.name == "tpe" and "constant_liar" not in sampler_cfg.options:
        # trials asked together should not all land on one point: TPE assumes the running ones did badly
        sampler_cfg = sampler_cfg.model_copy(update={"options": {**sampler_cfg.options, "constant_liar": True}})
    sampler = make_sampler(sampler_cfg, worker_seed(cfg.seed, 0, n_existing), len(objectives), grid_space)
    study = open_study(
        storage,
        name,
        directions=directions,
        sampler=sampler,
        pruner=make_pruner(pruner_cfg),
        resume=opts.resume,
        shown_storage=shown,
    )
    grid_size = space.size() if opts.grid is not None else None
    n_trials = cfg.budget.trials(grid_size)
    planned = None if n_trials is None else n_existing + n_trials  # what the monitor's ETA counts to
    stored_url = canonical_url(url)
    resolved = _resolved_yaml(cfg, space, objectives, directions, stored_url)
    attrs = {
        STUDY.OBJECTIVES: objectives,
        STUDY.DIRECTIONS: directions,
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
    }
    if opts.resume:
        _check_history(study, space)
        _check_budget(study, space, cfg)
    _set_attrs(study, attrs, opts.resume)
    if study.metric_names != objectives:  # optuna-dashboard then says "val_f1", not "Objective 0"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(objectives)
    if opts.reference and task == "classification":
        _reference(study, first, cache)
    journal = None if is_rdb(url) else (cfg.heartbeat_interval, cfg.grace_period, cfg.max_retry)
    if journal is not None:
        from tunelab.tune.heartbeat import reap_stale

        reap_stale(study, cfg.grace_period, cfg.max_retry)
    session = open_session(study)
    reap_orphans(study, cfg.max_retry, me=session)  # trials of a killed run: FAIL now, not after the grace period
    writer = StudyWriter(study_dir)
    writer.start(name, stored_url, mask_url(stored_url), resolved)
    n_enqueued = _enqueue(study, queued)
    family = space.family().label if not space.searches_family else None
    rep.start(
        TuneStart(
            study_name=name,
            storage=shown,
            study_dir=study_dir,
            n_trials=n_trials,
            timeout=cfg.budget.timeout,
            objectives=objectives,
            directions=directions,
            sampler=sampler_cfg.name,
            pruner=pruner_cfg.name,
            phase=opts.phase,
            fixed=dict(space.fixed),
            grid=opts.grid,
            grid_size=grid_size,
            space_size=space.size(),
            n_params=space.n_searched(),
            n_existing=n_existing,
            n_enqueued=n_enqueued,
            workers=opts.workers,
            resumed=opts.resume,
            defaults=picked,
            budget=budget_note,
        )
    )
    guard = _FailureGuard(cfg.budget.max_failures_in_a_row)
    deadline = None if cfg.budget.timeout is None else t_start + cfg.budget.timeout
    if deadline is not None:  # running trials stop at their next epoch end past it (tunelab.tune.deadline)
        callbacks = [*callbacks, StudyDeadline(deadline, waiting=lambda: _waiting(study))]
    prune = True  # per-epoch reports also feed the plots; the "none" pruner never stops a trial
    with ExitStack() as stack:
        tracking = None
        if opts.tracking is not None and getattr(opts.tracking, "enabled", False):
            from tunelab.track import study_tracking

            tracking = stack.enter_context(study_tracking(opts.tracking, name, resolved))
        try:
            if opts.workers == 1:
                _run_here(
                    study,
                    space,
                    objectives,
                    study_dir,
                    cache,
                    callbacks,
                    prune,
                    trial_context(study, journal, tracking),
                    n_trials,
                    remaining(deadline),
                    writer,
                    rep,
                    guard,
                    pack_size,
                )
            else:
                if tracking is not None:
                    log.warning("trackers record the study; with --workers, per-trial tracker runs are not logged")
                job = WorkerJob(
                    storage_url=url,
                    heartbeat=(cfg.heartbeat_interval, cfg.grace_period, cfg.max_retry),
                    study_name=name,
                    space=space,
                    objectives=objectives,
                    study_dir=study_dir,
                    sampler=sampler_cfg,
                    pruner=pruner_cfg,
                    seed=cfg.seed,
                    prune=prune,
                    plugins=tuple(opts.plugins),
                    data=data,
                    timeout=remaining(deadline),
                )
                _run_workers(study, job, opts.workers, n_trials, writer, objectives, rep, guard)
        finally:
            close_session(study, session)
            writer.update(study, objectives, final=True)
        if opts.report:
            _analyze(study_dir, study)
        result = _result(study, study_dir, shown, objectives, family)
        if tracking is not None:
            from tunelab.track import summarize_study

            tracking.finish(
                summarize_study(study),
                [p for p in (study_dir / "best_model.pt", study_dir / "report.html") if p.is_file()],
            )
    rep.end(result)
    if guard.message:
        raise UserError(f"study {name}: {guard.message}")
    return result


def _waiting(study: optuna.Study) -> int:
    """Queued trials not started yet (they share the time left, see tunelab.tune.deadline)."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def _portfolio(
    cfg: StudyConfig, opts: TuneOptions, task: str, size: DataSize
) -> tuple[StudyConfig, list[dict[str, Any]], str]:
    """The default portfolio when no model was named (the study and its known-good trials), and
    the header's budget line."""
    from tunelab.tune.portfolio import budget_line, portfolio_study

    queue: list[dict[str, Any]] = []
    default = cfg.budget.n_trials is None and cfg.budget.timeout is None
    # families or a space named (--auto-tune-all's per-family studies too): the user chose
    if opts.portfolio and opts.phase is None and opts.grid is None and cfg.families is None and cfg.space is None:
        cfg, queue = portfolio_study(cfg, task, size)
    return cfg, queue, budget_line(cfg.budget.timeout, cfg.budget.trials(), default and bool(queue))


def _run_here(
    study: optuna.Study,
    space: SearchSpace,
    objectives: list[str],
    study_dir: Path,
    cache: DataCache,
    callbacks: Sequence[Callback],
    prune: bool,
    ctx: Any,
    n_trials: int | None,
    timeout: float | None,
    writer: StudyWriter,
    rep: Reporter,
    guard: _FailureGuard,
    pack_size: int | str = 1,
) -> None:
    """Trials in this process: one at a time through ``study.optimize``, or in packs."""
    objective = Objective(space, objectives, study_dir, data=cache, callbacks=callbacks, prune=prune, trial_context=ctx)

    def told(study: optuna.Study, trials: list[FrozenTrial]) -> bool:
        writer.refresh(study, objectives)  # once for the trials told together (a pack)
        stop = False
        for trial in trials:
            rep.trial(study, trial)
            stop = guard(trial) or stop
        return stop

    if pack_size != 1:
        from tunelab.tune.packs import run_packs

        run_packs(study, objective, pack_size, n_trials, timeout, told, device=str(space.base.get("device", "auto")))
        return

    def after(study: optuna.Study, trial: FrozenTrial) -> None:
        if told(study, [trial]):
            study.stop()

    study.optimize(objective, n_trials=n_trials, timeout=timeout, catch=(TrialFailed,), callbacks=[after])


def _run_workers(
    study: optuna.Study,
    job: WorkerJob,
    n_workers: int,
    n_trials: int | None,
    writer: StudyWriter,
    objectives: list[str],
    rep: Reporter,
    guard: _FailureGuard,
) -> None:
    from optuna.trial import TrialState

    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    seen = {t.number for t in study.get_trials(deepcopy=False, states=done)}

    def poll() -> bool:
        new = [t for t in study.get_trials(deepcopy=False, states=done) if t.number not in seen]
        if not new:
            return bool(guard.message)
        writer.refresh(study, objectives)
        stop = False
        for t in sorted(new, key=lambda t: (t.datetime_complete or t.datetime_start, t.number)):  # type: ignore[arg-type, return-value]
            seen.add(t.number)
            rep.trial(study, t)
            stop = guard(t) or stop
        return stop or bool(guard.message)

    run_workers(job, n_workers, n_trials, poll)


# --------------------------------------------------------------------------- families


def auto_tune_all(
    cfg: StudyConfig,
    families: Sequence[str] | None = None,
    options: TuneOptions | None = None,
    *,
    data: Any | None = None,
    callbacks: Sequence[Callback] = (),
    reporter: Reporter | None = None,
) -> list[TuneResult]:
    """One study per model family, in turn (seed 000's ``--auto-tune-all``), named
    ``<study>-<timestamp>/<family>``; compare them with :func:`tunelab.tune.report.comparison_rows`."""
    opts = options or TuneOptions()
    if opts.phase is not None or opts.grid is not None:
        raise UserError("--auto-tune-all runs whole studies per family; drop --phase/--grid")
    labels = list(families or cfg.families or SEED000_FAMILIES)
    url = cfg.storage or default_storage(opts.save_dir)
    storage = make_storage(
        url, heartbeat_interval=cfg.heartbeat_interval, grace_period=cfg.grace_period, max_retry=cfg.max_retry
    )
    base = opts.study_name or cfg.name or "tune"
    head = None
    if not opts.resume:
        head, i = new_study_name(base), 1
        while any(study_exists(storage, f"{head}/{lab}") for lab in labels):
            head, i = f"{new_study_name(base)}-{i}", i + 1
    results = []
    for label in labels:
        if head is not None:
            name = f"{head}/{label}"
        else:
            found = find_latest_study(storage, base, label)
            if found is None:
                raise UserError(f"--resume: no study '{base}-<timestamp>/{label}' in {mask_url(url)}")
            name = found
        fam_cfg = cfg.model_copy(update={"families": [label]})
        results.append(tune(fam_cfg, replace(opts, study_name=name), data=data, callbacks=callbacks, reporter=reporter))
    write_comparison(results)
    return results


def comparison_file(results: Sequence[TuneResult]) -> Path:
    """Where :func:`auto_tune_all` writes its family comparison: the study group's folder."""
    return results[0].study_dir.parent / "comparison.csv"


def write_comparison(results: Sequence[TuneResult]) -> Path | None:
    """The family comparison (one row per family, best first) as ``<group>/comparison.csv``."""
    if not results:
        return None
    from tunelab.results.study import _csv
    from tunelab.tune.report import comparison_rows

    return write_text(comparison_file(results), _csv(comparison_rows(results)))
