"""``tunelab worker``: join a study from any host, with the study read from its storage.

``tunelab tune`` stores the resolved study (its StudyConfig, the resolved search space, the values
earlier phases fixed, the objectives) in the study's user attributes when it creates the study, so
a worker needs nothing but the storage URL and the study name.  Each worker runs trials until the
study's budget is spent: ``n_trials`` trials in the study (a retried trial counts once; several
workers may overshoot by one trial each, as with Optuna's ``MaxTrialsCallback``), or the study's
``timeout`` counted from its first trial.  ``devices`` runs one worker process per device.

A host that dies leaves its trials RUNNING; their heartbeats stop (Optuna's own on RDB storages,
tunelab's on journal and gRPC ones), and the next trial any worker starts on any host fails them
and re-queues their parameters.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.config.study import ParamSpec, StudyConfig
from tunelab.errors import UserError
from tunelab.results.attrs import STUDY
from tunelab.storage import make_storage, mask_url, needs_own_heartbeat, study_exists
from tunelab.tune.space import SearchSpace

if TYPE_CHECKING:
    import optuna

__all__ = ["StoredStudy", "budget_left", "join_study", "parse_devices", "stored_study"]

log = logging.getLogger(__name__)


@dataclass
class StoredStudy:
    """What ``tunelab tune`` stored about a study: enough to run its trials anywhere."""

    cfg: StudyConfig
    space: SearchSpace
    objectives: list[str]
    n_trials: int | None  # the study's whole trial budget
    timeout: float | None

    @property
    def heartbeat(self) -> tuple[int, int, int]:
        return self.cfg.heartbeat_interval, self.cfg.grace_period, self.cfg.max_retry


def stored_study(study: optuna.Study, shown: str) -> StoredStudy:
    """Rebuild the study file and search space that ``tunelab tune`` stored with the study."""
    from tunelab.config import save_config
    from tunelab.tune.space import _ordered

    attrs = study.user_attrs
    record = attrs.get(STUDY.STUDY_CONFIG)
    if not isinstance(record, dict) or "resolved_space" not in record:
        raise UserError(
            f"study '{study.study_name}' in {shown} holds no tunelab study config; start it with "
            "`tunelab tune STUDY_FILE --storage URL --study-name NAME` first"
        )
    data = {k: v for k, v in record.items() if k != "resolved_space"}
    data["storage"] = None  # masked when stored; the worker's own --storage is the one to use
    cfg = StudyConfig.model_validate(data)
    resolved = record["resolved_space"]
    params = {k: ParamSpec.model_validate(v) for k, v in (resolved.get("params") or {}).items()}
    space = SearchSpace(
        save_config(cfg.base),
        _ordered(params, "the stored study"),
        dict(attrs.get(STUDY.FIXED_PARAMS) or {}),
        list(resolved["families"]) if resolved.get("families") else None,
        resolved.get("grid"),
        attrs.get(STUDY.GRID),
    )
    return StoredStudy(cfg, space, list(attrs[STUDY.OBJECTIVES]), cfg.budget.n_trials, cfg.budget.timeout)


def budget_left(study: optuna.Study, n_trials: int | None, deadline: float | None) -> str:
    """``"run"`` another trial, ``"wait"`` for the running trials of others (their host may have
    died: their retries are part of the budget), or ``"done"``.  Queued trials always run; a
    retried trial counts once."""
    from optuna.trial import TrialState

    if deadline is not None and time.time() >= deadline:
        return "done"
    trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.WAITING for t in trials):
        return "run"
    retried = {t.system_attrs.get("failed_trial") for t in trials} - {None}
    if n_trials is None and deadline is not None:
        return "run"
    if n_trials is not None and sum(1 for t in trials if t.number not in retried) < n_trials:
        return "run"
    return "wait" if any(t.state == TrialState.RUNNING for t in trials) else "done"


def _reap(study: optuna.Study, own: tuple[int, int, int] | None) -> None:
    """Fail (and re-queue) the trials whose heartbeat went stale, on any host."""
    import optuna

    if own is not None:
        from tunelab.tune.execution.heartbeat import reap_stale

        reap_stale(study, own[1], own[2])
    else:
        optuna.storages.fail_stale_trials(study)


def _deadline(study: optuna.Study, timeout: float | None) -> float | None:
    if timeout is None:
        return None
    starts = [t.datetime_start.timestamp() for t in study.get_trials(deepcopy=False) if t.datetime_start]
    return (min(starts) if starts else time.time()) + timeout


def parse_devices(text: str | None) -> list[str | None]:
    """``cuda:0,cuda:1`` → those devices; ``all`` → every visible GPU (else this CPU); None → one worker."""
    if text is None or not text.strip():
        return [None]
    if text.strip() == "all":
        import torch

        n = torch.cuda.device_count()
        return [f"cuda:{i}" for i in range(n)] if n else ["cpu"]
    devices = [d.strip() for d in text.split(",")]
    for d in devices:
        if not d or not (d == "cpu" or d == "cuda" or d == "mps" or (d.startswith("cuda:") and d[5:].isdigit())):
            raise UserError(f"--devices {text}: '{d}' is not a device; use cuda:0,cuda:1,... or cpu, or all")
    return list(devices)


def _open(url: str, name: str) -> tuple[Any, optuna.Study, StoredStudy]:
    import optuna

    shown = mask_url(url)
    storage = make_storage(url)
    if not study_exists(storage, name):
        raise UserError(f"--study-name: no study '{name}' in {shown}; check the name and --storage")
    plain = optuna.load_study(study_name=name, storage=storage)
    stored = stored_study(plain, shown)
    if stored.heartbeat != (10, 60, 2):  # the study's own heartbeat settings, not the defaults
        interval, grace, retry = stored.heartbeat
        storage = make_storage(url, heartbeat_interval=interval, grace_period=grace, max_retry=retry)
    return storage, plain, stored


def _run(
    url: str,
    name: str,
    save_dir: str,
    device: str | None,
    index: int,
    host_id: str | None,
    artifacts: str | None = None,
) -> int:
    """Run trials of study ``name`` until its budget is spent; returns how many this worker ran."""
    import optuna

    from tunelab.tune.execution.objective import Objective, TrialFailed
    from tunelab.tune.execution.owners import close_session, open_session, reap_orphans, set_host_id
    from tunelab.tune.execution.run import trial_context
    from tunelab.tune.execution.workers import _STOP_ASKED, worker_seed
    from tunelab.tune.study import make_pruner, make_sampler

    set_host_id(host_id)
    storage, plain, stored = _open(url, name)
    space = stored.space
    if device is not None:
        space.base["device"] = device
    n_existing = len(plain.get_trials(deepcopy=False))
    grid = space.grid_search_space() if stored.cfg.sampler.name == "grid" else None
    seed = worker_seed(stored.cfg.seed, 1 + index + os.getpid() % 9973, n_existing)  # differs per host and process
    sampler = make_sampler(stored.cfg.sampler, seed, len(stored.objectives), grid)
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=make_pruner(stored.cfg.pruner))
    interval, grace, retry = stored.heartbeat
    own = (interval, grace, retry) if needs_own_heartbeat(url) else None
    session = open_session(study)
    reap_orphans(study, retry, me=session)  # this host's killed processes: at once
    _reap(study, own)
    deadline = _deadline(study, stored.timeout)
    from tunelab.tune.execution.deadline import StudyDeadline

    objective = Objective(
        space,
        stored.objectives,
        Path(save_dir) / name,
        callbacks=[StudyDeadline(deadline)] if deadline is not None else [],  # running trials end at it too
        trial_context=trial_context(study, own),
        prune=True,
        artifacts=artifacts,
    )
    ran = 0
    try:
        while not _STOP_ASKED.is_set():
            step = budget_left(study, stored.n_trials, deadline)
            if step == "done":
                break
            if step == "wait":  # another worker's last trials: finished, or failed and re-queued
                time.sleep(min(interval, 2))
                _reap(study, own)
                continue
            study.optimize(objective, n_trials=1, catch=(TrialFailed,))
            ran += 1
    finally:
        close_session(study, session)
    return ran


def _child(
    url: str,
    name: str,
    save_dir: str,
    device: str | None,
    index: int,
    host_id: str | None,
    parent: int,
    plugins: tuple[str, ...] = (),
    artifacts: str | None = None,
) -> None:
    from tunelab.tune.execution.workers import _follow_parent

    _follow_parent(parent)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    import tunelab.models  # noqa: F401  (registers the built-in models)
    from tunelab.plugins import load_plugin

    try:
        for p in plugins:
            load_plugin(p)
        _run(url, name, save_dir, device, index, host_id, artifacts)
    except UserError as exc:
        log.error("%s", exc)
        raise SystemExit(2) from None


def join_study(
    url: str,
    name: str,
    *,
    save_dir: str | Path = "runs",
    devices: str | None = None,
    host_id: str | None = None,
    plugins: tuple[str, ...] = (),
    artifacts: str | None = None,
) -> dict[str, int]:
    """Run trials of study ``name`` in ``url`` here until its budget is spent (one process per device).

    ``artifacts`` is this host's path (or URL) to the study's artifact store; without it, the one
    ``tunelab tune --artifacts`` stored with the study.  Returns the study's trial states at the end.
    """
    import optuna

    from tunelab.results.artifacts import check_url, study_store

    chosen = parse_devices(devices)
    if artifacts is not None:
        artifacts = check_url(artifacts, write=True)
    storage, plain, stored = _open(url, name)  # refuse a bad URL or name before starting anything
    study_store(plain, artifacts, write=True)  # the study's own store: reachable from this host?
    if artifacts is not None and STUDY.ARTIFACTS not in plain.user_attrs:
        plain.set_user_attr(STUDY.ARTIFACTS, artifacts)  # from now on, the study's store
    if len(chosen) == 1:
        _run(url, name, str(save_dir), chosen[0], 0, host_id, artifacts)
    else:
        ctx = mp.get_context("spawn")
        procs = [
            ctx.Process(
                target=_child,
                args=(url, name, str(save_dir), dev, i, host_id, os.getpid(), plugins, artifacts),
                name=f"tunelab-worker-{dev}",
            )
            for i, dev in enumerate(chosen)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        codes = [p.exitcode for p in procs]
        if all(c == 2 for c in codes):
            raise UserError(f"every worker of study '{name}' stopped on an error (see the log above)")
    states: dict[str, int] = {}
    for t in optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False):
        states[t.state.name] = states.get(t.state.name, 0) + 1
    return states
