"""``--workers N``: N worker *processes* on one storage (not threads: training holds the GIL and
each process owns its own CUDA context).

The parent creates the study, starts the workers with the ``spawn`` method and reports the trials
they finish by polling the storage.  The trial budget is one shared counter: a worker takes a ticket
before each trial, so exactly ``n_trials`` trials start however long each one takes.  Each worker
seeds its sampler differently, so no two workers propose the same sequence.  A worker killed
mid-trial leaves a RUNNING trial whose heartbeat stops; the next trial any worker starts fails it
and re-queues its parameters (see :mod:`tunelab.tune.study`).  On Ctrl+C, SIGTERM, or when its
parent is gone (even killed), a worker ends its trial as "interrupted" at the next epoch boundary
and exits.  Other machines join a study with
``tunelab tune --resume --study-name NAME --storage URL`` (a server storage such as PostgreSQL).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.config.study import PrunerConfig, SamplerConfig
from tunelab.errors import UserError
from tunelab.train.callbacks import BaseCallback
from tunelab.tune.space import SearchSpace

__all__ = ["WorkerJob", "run_workers", "worker_seed"]

log = logging.getLogger(__name__)
_UNLIMITED = 2**31 - 1


def worker_seed(seed: int, worker: int, n_existing: int) -> int:
    """A sampler seed per worker (and per resumed run), so no two sample the same sequence."""
    return seed + n_existing + 7919 * worker


@dataclass
class WorkerJob:
    """Everything a worker process needs (picklable)."""

    storage_url: str
    heartbeat: tuple[int, int, int]  # interval, grace period, max retry
    study_name: str
    space: SearchSpace
    objectives: list[str]
    study_dir: Path
    sampler: SamplerConfig
    pruner: PrunerConfig
    seed: int
    prune: bool = True
    plugins: tuple[str, ...] = ()
    data: Any | None = None
    timeout: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


#: In a worker process: stop after the current epoch (Ctrl+C, SIGTERM, or the parent is gone).
_STOP_ASKED = threading.Event()


class _StopAtEpochEnd(BaseCallback):
    """Ends a worker's trial as "interrupted" at an epoch boundary.  A signal handler that raised
    at once could land inside a storage commit and leave SQLite locked by this very process: the
    trial's failure could then not be written."""

    def on_epoch_end(self, ctx: Any, report: Any) -> None:
        if _STOP_ASKED.is_set():
            raise KeyboardInterrupt


def _follow_parent(parent: int, every: float = 1.0) -> None:
    """Ask this worker to stop on Ctrl+C, SIGTERM (the parent's ``terminate``) or when its parent
    is gone, even killed with SIGKILL: no orphan trains on unseen."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: _STOP_ASKED.set())

    def watch() -> None:
        while os.getppid() == parent and not _STOP_ASKED.is_set():
            time.sleep(every)
        _STOP_ASKED.set()

    threading.Thread(target=watch, name="tunelab-parent-watch", daemon=True).start()


def _worker_main(job: WorkerJob, index: int, remaining: Any, lock: Any, stop: Any, errors: Any, parent: int) -> None:
    _follow_parent(parent)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    import torch

    import tunelab.models  # noqa: F401  (registers the built-in models)
    from tunelab.plugins import load_plugin
    from tunelab.tune.execution.objective import Objective, TrialFailed
    from tunelab.tune.execution.owners import close_session, open_session, set_host_id
    from tunelab.tune.execution.run import trial_context
    from tunelab.tune.study import is_rdb, make_pruner, make_sampler, make_storage

    # share the cores: N processes each using every core would oversubscribe them many times over
    set_host_id(job.extra.get("host_id"))  # a simulated host (tests) keeps its identity in its workers
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, int(job.extra.get("workers", 1)))))
    try:
        for p in job.plugins:
            load_plugin(p)
        interval, grace, retry = job.heartbeat
        storage = make_storage(job.storage_url, heartbeat_interval=interval, grace_period=grace, max_retry=retry)
        n_existing = len(storage.get_all_trials(storage.get_study_id_from_name(job.study_name), deepcopy=False))
        grid = job.space.grid_search_space() if job.sampler.name == "grid" else None
        sampler = make_sampler(job.sampler, worker_seed(job.seed, index + 1, n_existing), len(job.objectives), grid)
        study = optuna.load_study(
            study_name=job.study_name, storage=storage, sampler=sampler, pruner=make_pruner(job.pruner)
        )
        session = open_session(study)  # before any trial: see tunelab.tune.execution.owners
        ctx = trial_context(study, None if is_rdb(job.storage_url) else (interval, grace, retry))
        deadline = time.time() + job.timeout if job.timeout else None
        from tunelab.tune.execution.deadline import StudyDeadline

        objective = Objective(
            job.space,
            job.objectives,
            job.study_dir,
            data=job.data,
            callbacks=[_StopAtEpochEnd(), *([StudyDeadline(deadline)] if deadline is not None else [])],
            prune=job.prune,
            trial_context=ctx,
        )
        while not stop.is_set() and not _STOP_ASKED.is_set():
            with lock:
                if remaining.value <= 0:
                    break
                remaining.value -= 1
            if deadline is not None and time.time() >= deadline:
                break
            study.optimize(objective, n_trials=1, catch=(TrialFailed,))
        close_session(study, session)
    except UserError as exc:
        errors.put(str(exc))
        stop.set()
    except KeyboardInterrupt:
        stop.set()


def run_workers(
    job: WorkerJob, n_workers: int, n_trials: int | None, poll: Callable[[], bool], interval: float = 1.0
) -> None:
    """Run ``n_trials`` trials on ``n_workers`` processes; ``poll()`` runs every ``interval`` s in
    this process (report progress) and returns True to stop the workers after their current trial."""
    from tunelab.tune.execution.owners import host_id

    job.extra.setdefault("workers", n_workers)
    job.extra.setdefault("host_id", host_id())
    ctx = mp.get_context("spawn")
    remaining = ctx.Value("i", n_trials if n_trials is not None else _UNLIMITED)
    lock, stop, errors = ctx.Lock(), ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker_main, args=(job, i, remaining, lock, stop, errors, os.getpid()), name=f"tunelab-worker-{i}"
        )
        for i in range(n_workers)
    ]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(interval)
            if poll():
                stop.set()
        poll()
    except KeyboardInterrupt:
        stop.set()
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
        raise
    for p in procs:
        p.join()
        if p.exitcode not in (0, None):
            log.warning(
                "worker %s exited with code %s; its running trial is failed and retried by the heartbeat rule",
                p.name,
                p.exitcode,
            )
    try:
        message = errors.get_nowait()
    except queue.Empty:
        return
    raise UserError(message)
