"""Run an experiment set as an Optuna study, resumably, with one or more workers.

Each experiment × seed is one trial, enqueued with its experiment name, seed and config hash as
user attributes, in a study named after the set (default storage ``sqlite:///<save-dir>/tunelab.db``,
as for ``tune``).  Before running, finished trials (COMPLETE, or PRUNED when training diverged)
whose hash matches are skipped, trials still queued are kept, and the rest are enqueued: an
interrupted set resumes where it stopped, and an experiment whose overrides changed runs again.

The engine, storage and artifacts are ``tune``'s: trials run through
:class:`tunelab.tune.execution.objective.Objective` (a :class:`FixedSpace` hands it each queued job's
config), the storage comes from :func:`tunelab.storage.make_storage`, a trial whose process
was killed is failed and re-queued when the set runs again (:mod:`tunelab.tune.execution.owners`, and
heartbeats for other hosts), ``--workers`` uses :func:`tunelab.tune.execution.workers.run_workers`, and
:class:`tunelab.results.study.StudyWriter` writes ``study.json``, ``trials.csv``,
``study_results.json`` and one ``trials/<number>-<time>/`` run directory per trial.  The
comparison lands beside: ``comparison.{csv,json,md}`` and ``plots/``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.config.study import metric_direction
from tunelab.errors import UserError
from tunelab.experiments.comparison import Comparison, Entry, Sample, compare_entries, default_metrics
from tunelab.experiments.spec import ExperimentSet, Job, load_experiment_set
from tunelab.results.attrs import STUDY
from tunelab.results.io import write_json, write_text

if TYPE_CHECKING:
    from tunelab.tune.execution.objective import DataCache

__all__ = [
    "EXPERIMENT",
    "KEY",
    "KIND",
    "SEED",
    "FixedSpace",
    "SetResult",
    "build_comparison",
    "lead_metrics",
    "run_experiment_set",
    "write_comparison",
]

log = logging.getLogger(__name__)

# trial.user_attrs of an experiment trial (beside results.attrs.TRIAL's)
EXPERIMENT, SEED, KEY = "experiment", "seed", "config_key"
KIND = "kind"  # study.user_attrs: "experiment_set"
DONE_STATES = ("COMPLETE", "PRUNED")
HEARTBEAT = (10, 60, 2)  # interval s, grace period s, retries: tune's defaults (tunelab.storage.make_storage)


@dataclass
class SetResult:
    """What ``run_experiment_set`` returns."""

    spec: ExperimentSet
    study_dir: Path
    comparison: Comparison
    entries: list[Entry]
    ran: int  # trials trained by this call
    skipped: int  # jobs already finished before this call
    files: dict[str, Path] = field(default_factory=dict)


class FixedSpace:
    """A 'search space' that samples nothing: a trial's config is its queued job's.

    It lets ``tune``'s :class:`~tunelab.tune.execution.objective.Objective` run experiment trials, so
    they are trained, recorded and fail exactly as tune's trials do.
    """

    def __init__(self, jobs: list[Job]) -> None:
        self.jobs = {(j.experiment, j.seed): j for j in jobs}

    def sample(self, trial: Any) -> tuple[Any, dict[str, Any]]:
        from tunelab.tune.space import InvalidSample

        name, seed = trial.user_attrs.get(EXPERIMENT), trial.user_attrs.get(SEED)
        job = self.jobs.get((name, seed))
        if job is None:  # queued by an earlier version of the set, since removed from it
            raise InvalidSample(f"experiment '{name}' seed {seed} is no longer in the set")
        trial.set_user_attr(KEY, job.key)
        return job.config, {EXPERIMENT: name, SEED: seed}


def _open(url: str, name: str, metric: str) -> tuple[Any, str]:
    """The set's study (created on first use) and its storage URL as shown to the user."""
    import optuna

    from tunelab.storage import make_storage, mask_url

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = make_storage(url)
    study = optuna.create_study(
        storage=storage, study_name=name, direction=metric_direction(metric), load_if_exists=True
    )
    if study.trials and study.user_attrs.get(KIND) != "experiment_set":
        raise UserError(
            f"study '{name}' in {mask_url(url)} is a tune study; rename the experiment set (name: ...) or use another --storage"
        )
    return study, mask_url(url)


def _state(t: Any) -> str:
    return str(t.state.name)


def _plan(study: Any, jobs: list[Job]) -> int:
    """Enqueue the jobs not finished, queued or running; return how many had finished before."""
    status: dict[tuple[Any, Any, Any], str] = {}
    for t in study.get_trials(deepcopy=False):
        key = (t.user_attrs.get(EXPERIMENT), t.user_attrs.get(SEED), t.user_attrs.get(KEY))
        if _state(t) in DONE_STATES:
            status[key] = "done"
        elif _state(t) in ("WAITING", "RUNNING") and status.get(key) != "done":
            status[key] = _state(t)
    for j in jobs:
        if (j.experiment, j.seed, j.key) not in status:
            study.enqueue_trial({}, user_attrs={EXPERIMENT: j.experiment, SEED: j.seed, KEY: j.key})
    return sum(1 for j in jobs if status.get((j.experiment, j.seed, j.key)) == "done")


def _checked_data(jobs: list[Job], metric: str, path: str | Path) -> DataCache:
    """Each data source of the set, loaded once before any storage file or study is created (so
    bad data, or an objective its task lacks, fails as one line and leaves nothing behind); the
    cache then serves the trials."""
    from tunelab.data import data_key
    from tunelab.tune.checks import check_objectives
    from tunelab.tune.execution.objective import DataCache

    firsts: dict[str, Any] = {}  # the first job of each source: the first trial finds its data cached
    for job in jobs:
        firsts.setdefault(data_key(job.config.data, 0), job.config)  # one per source, whatever the seed
    data = DataCache(max_items=1)
    for cfg in firsts.values():
        check_objectives([metric], str(data.get(cfg).meta.task), f"{path}: metrics")
    return data


def _optimize(
    study: Any,
    jobs: list[Job],
    study_dir: Path,
    metric: str,
    url: str,
    n_trials: int,
    callbacks: list[Any],
    data: DataCache,
) -> None:
    """Train ``n_trials`` queued trials in this process, exactly as tune trains a trial."""
    from tunelab.storage import is_rdb
    from tunelab.tune.execution.objective import Objective, TrialFailed
    from tunelab.tune.execution.run import trial_context

    ctx = trial_context(study, None if is_rdb(url) else HEARTBEAT)  # tune's own heartbeat on journal storages
    objective = Objective(FixedSpace(jobs), [metric], study_dir, prune=False, trial_context=ctx, data=data)  # type: ignore[arg-type]
    study.optimize(objective, n_trials=n_trials, catch=(TrialFailed,), callbacks=callbacks)


def _run_workers(
    study: Any,
    jobs: list[Job],
    study_dir: Path,
    metric: str,
    url: str,
    n_trials: int,
    workers: int,
    plugins: list[str],
    poll: Callable[[], None],
) -> None:
    """``workers`` processes share the queue through tune's worker pool (one shared trial counter,
    so exactly the queued trials run and none is sampled)."""
    from tunelab.config.study import PrunerConfig, SamplerConfig
    from tunelab.tune.execution.workers import WorkerJob, run_workers

    job = WorkerJob(
        storage_url=url,
        heartbeat=HEARTBEAT,
        study_name=study.study_name,
        space=FixedSpace(jobs),  # type: ignore[arg-type]
        objectives=[metric],
        study_dir=study_dir,
        sampler=SamplerConfig(),
        pruner=PrunerConfig(name="none"),
        seed=0,
        prune=False,
        plugins=tuple(plugins),
    )

    def report() -> bool:
        poll()
        return False  # never stop early: every queued trial runs

    run_workers(job, min(workers, n_trials), n_trials, report)


def _report_new(study: Any, reported: set[int], on_trial: Callable[[Any], None] | None) -> None:
    if on_trial is None:
        return
    for t in study.get_trials(deepcopy=False):
        if t.number not in reported and _state(t) in (*DONE_STATES, "FAIL") and EXPERIMENT in t.user_attrs:
            reported.add(t.number)
            on_trial(t)


def run_experiment_set(
    path: str | Path,
    *,
    overrides: list[str] | None = None,
    save_dir: str | Path = "runs",
    storage: str | None = None,
    workers: int = 1,
    plugins: list[str] | None = None,
    on_trial: Callable[[Any], None] | None = None,
) -> SetResult:
    """Run (or resume) the experiment set in ``path`` and write its comparison.

    ``overrides`` apply to every experiment's base config (e.g. ``device=cpu``); ``storage`` is
    an Optuna storage URL (default ``sqlite:///<save_dir>/tunelab.db``); ``workers`` processes
    share the queue; ``plugins`` are re-imported in each worker; ``on_trial`` is called with each
    trial (an Optuna ``FrozenTrial``) as it finishes.
    """
    import optuna

    from tunelab.results.study import StudyWriter
    from tunelab.storage import canonical_url, default_storage
    from tunelab.tune.execution.owners import close_session, open_session, reap_orphans

    if workers < 1:
        raise UserError(f"--workers {workers}: must be at least 1")
    spec, jobs = load_experiment_set(path, overrides)
    study_dir = Path(save_dir) / spec.name
    url = canonical_url(storage or default_storage(save_dir))
    metric = spec.metrics[0] if spec.metrics else jobs[0].config.train.early_stopping.monitor
    data = _checked_data(jobs, metric, path)
    study, shown = _open(url, spec.name, metric)
    spec_dict = spec.model_dump(mode="json")
    for k, v in {
        KIND: "experiment_set",
        STUDY.OBJECTIVES: [metric],
        STUDY.DIRECTIONS: [metric_direction(metric)],
        STUDY.PHASE: "experiments",
        STUDY.SAVE_DIR: str(study_dir),
        STUDY.STUDY_CONFIG: spec_dict,
    }.items():
        study.set_user_attr(k, v)
    writer = StudyWriter(study_dir)
    writer.start(spec.name, url, shown, {"experiment_set": spec_dict, "overrides": list(overrides or [])})

    session = open_session(study)  # before any trial runs: see tunelab.tune.execution.owners
    try:
        reap_orphans(study, HEARTBEAT[2], me=session)  # trials of a killed run: failed and re-queued now
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # trials of workers lost on other hosts: likewise
        done = _plan(study, jobs)
        queued = {t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))}
        log.info("experiment set %s: %d jobs, %d finished before, %d to run", spec.name, len(jobs), done, len(queued))
        reported = {t.number for t in study.get_trials(deepcopy=False) if _state(t) not in ("WAITING", "RUNNING")}

        def after_trial(s: Any, t: Any) -> None:
            writer.refresh(s, [metric])  # as tune does: the final update below always runs
            _report_new(s, reported, on_trial)

        if queued and workers == 1:
            _optimize(study, jobs, study_dir, metric, url, len(queued), [after_trial], data)
        elif queued:
            poll = lambda: after_trial(study, None)  # noqa: E731
            _run_workers(study, jobs, study_dir, metric, url, len(queued), workers, list(plugins or []), poll)
    finally:
        close_session(study, session)
    writer.update(study, [metric], final=True)
    ran = sum(
        1 for t in study.get_trials(deepcopy=False) if t.number in queued and _state(t) not in ("WAITING", "RUNNING")
    )
    comparison, entries = build_comparison(spec, jobs, study, study_dir)
    files = write_comparison(spec, comparison, entries, study_dir)
    return SetResult(spec, study_dir, comparison, entries, ran=ran, skipped=done, files=files)


def build_comparison(
    spec: ExperimentSet, jobs: list[Job], study: Any, study_dir: Path
) -> tuple[Comparison, list[Entry]]:
    """One entry per experiment (in file order) from its finished trials of the current config."""
    from tunelab.experiments.sources import sample_from_trial

    latest: dict[tuple[str, int, str], Any] = {}
    for t in study.get_trials(deepcopy=False):
        if _state(t) == "COMPLETE":
            latest[(t.user_attrs.get(EXPERIMENT), t.user_attrs.get(SEED), t.user_attrs.get(KEY))] = t
    entries = []
    for name, exp in spec.experiments.items():
        mine = [j for j in jobs if j.experiment == name]
        samples: list[Sample] = []
        for j in mine:
            t = latest.get((j.experiment, j.seed, j.key))
            if t is not None:
                samples.append(sample_from_trial(t, study_dir, f"{name} seed {j.seed}"))
        missing = len(mine) - len(samples)
        note = f"{missing} of {len(mine)} seeds did not finish" if missing else exp.description
        entries.append(Entry(name, samples, note=note))
    all_samples = [s for e in entries for s in e.samples]
    metrics = list(spec.metrics) + [m for m in default_metrics(all_samples) if m not in spec.metrics]
    return compare_entries(entries, spec.baseline_name, metrics, spec.level), entries


def lead_metrics(spec: ExperimentSet, comparison: Comparison, k: int = 4) -> list[str]:
    """The metrics a reader sees first: the set's ``metrics``, else the usual test/val scores."""
    if spec.metrics:
        return list(spec.metrics)
    preferred = ["test_acc", "test_f1", "test_mse", "test_mae", "test_snr_db", "test_snr_gain_db", "val_loss"]
    have = [m for m in preferred if m in comparison.metrics]
    return have[:k] or [m for m in comparison.metrics if m not in ("n_params", "seconds_per_epoch")][:k]


def write_comparison(
    spec: ExperimentSet, comparison: Comparison, entries: list[Entry], study_dir: Path
) -> dict[str, Path]:
    """comparison.csv (every metric, long format), comparison.json, comparison.md, plots/."""
    from tunelab.experiments.plots import plot_learning_curves, plot_metric_by_experiment

    files = {
        "csv": write_text(study_dir / "comparison.csv", comparison.to_frame().to_csv(index=False)),
        "json": write_json(study_dir / "comparison.json", comparison.to_dict()),
    }
    lead = lead_metrics(spec, comparison)
    title = f"# {spec.name}\n\n{spec.description}\n\n" if spec.description else f"# {spec.name}\n\n"
    files["md"] = write_text(
        study_dir / "comparison.md", title + comparison.to_markdown([*lead, "n_params", "seconds_per_epoch"])
    )
    if any(e.samples for e in entries):
        files |= plot_metric_by_experiment(comparison, entries, lead[:3], study_dir / "plots" / "metric_by_experiment")
        curve = next(
            (
                m
                for m in (f"val_{m.split('_', 1)[-1]}" for m in lead)
                if any(m in r for e in entries for s in e.samples for r in s.history)
            ),
            "val_loss",
        )
        files |= plot_learning_curves(
            entries, curve, study_dir / "plots" / "learning_curves", baseline=spec.baseline_name
        )
    return files
