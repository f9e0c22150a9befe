"""Running a prepared study's trials: here (one at a time, or in packs) or on worker processes,
telling the reporter and refreshing the study directory as each trial ends."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

from tunelab.config.study import StudyConfig
from tunelab.results.attrs import TRIAL
from tunelab.train.callbacks import Callback
from tunelab.tune.execution.deadline import StudyDeadline, remaining
from tunelab.tune.execution.objective import Objective, TrialFailed
from tunelab.tune.execution.workers import WorkerJob, run_workers
from tunelab.tune.reporting.reads import snapshot
from tunelab.tune.reporting.reporter import Reporter

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from tunelab.tune.execution.packs import Pending
    from tunelab.tune.prepare import PreparedStudy

__all__ = ["FailureGuard", "run_trials", "trial_context"]

log = logging.getLogger(__name__)


class FailureGuard:
    """Stops a study after ``limit`` failed trials in a row (a broken config fails them all)."""

    def __init__(self, limit: int | None) -> None:
        self.limit, self.run, self.message = limit, 0, ""

    def __call__(self, *trials: FrozenTrial) -> bool:
        """Count ``trials`` told together (a pack's members) as one: a pack that fails as a whole
        (out of memory) is one failure, not one per member."""
        states = {t.state.name for t in trials}
        if states & {"COMPLETE", "PRUNED"}:
            self.run = 0
        elif "FAIL" in states:
            self.run += 1
        if self.limit is not None and self.run >= self.limit and not self.message:
            reason = next(t for t in reversed(trials) if t.state.name == "FAIL").user_attrs.get(TRIAL.REASON, "unknown")
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
                from tunelab.tune.execution.heartbeat import beating, reap_stale

                interval, grace, retry = journal_heartbeat
                reap_stale(study, grace, retry, skip=trial._trial_id)
                stack.enter_context(beating(study, trial._trial_id, interval))
            if tracking is not None:
                callbacks += stack.enter_context(
                    tracking.trial(f"trial-{trial.number}", tags={"trial": trial.number}, params=params)
                )
            yield callbacks

    return ctx


def run_trials(
    p: PreparedStudy,
    cfg: StudyConfig,
    *,
    data: Any | None,
    callbacks: Sequence[Callback],
    reporter: Reporter,
    guard: FailureGuard,
    tracking: Any = None,
) -> None:
    """Run the study's trials until its budget is spent (or ``guard`` stops it)."""
    from tunelab.tune.execution.packs import Pending

    prune = True  # per-epoch reports also feed the plots; the "none" pruner never stops a trial
    pending = Pending()  # a pack batch's groups still to start share the time left, as queued trials do
    if p.deadline is not None:  # running trials stop at their next epoch end past it
        queued = Queued(p.study)
        callbacks = [*callbacks, StudyDeadline(p.deadline, waiting=lambda: queued() + pending.groups)]
    if p.opts.workers == 1:
        ctx = trial_context(p.study, p.journal, tracking)
        timeout = remaining(p.deadline)
        _run_here(
            p, callbacks=callbacks, prune=prune, ctx=ctx, timeout=timeout, rep=reporter, guard=guard, pending=pending
        )
        return
    if tracking is not None:
        log.warning("trackers record the study; with --workers, per-trial tracker runs are not logged")
    job = WorkerJob(
        storage_url=p.url,
        heartbeat=(cfg.heartbeat_interval, cfg.grace_period, cfg.max_retry),
        study_name=p.study.study_name,
        space=p.space,
        objectives=p.objectives,
        study_dir=p.study_dir,
        sampler=p.sampler,
        pruner=p.pruner,
        seed=cfg.seed,
        prune=prune,
        plugins=tuple(p.opts.plugins),
        data=data,
        timeout=remaining(p.deadline),
    )
    _run_workers(p, job, reporter, guard)


class Queued:
    """How many queued trials have not started yet (they share the time left, see
    tunelab.tune.execution.deadline).  One read serves the calls of the next ``ttl`` seconds: a
    pack's members start together, and each read of an RDB study re-reads every running trial
    (a 256-trial batch's members read it 180 times, 18 s of a 60 s study on 2 cores)."""

    def __init__(self, study: optuna.Study, ttl: float = 2.0) -> None:
        self.study, self.ttl = study, ttl
        self.count, self.read_at = 0, -math.inf

    def __call__(self) -> int:
        from optuna.trial import TrialState

        now = time.monotonic()
        if now - self.read_at >= self.ttl:
            self.count = len(self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
            self.read_at = now
        return self.count


def _run_here(
    p: PreparedStudy,
    *,
    callbacks: Sequence[Callback],
    prune: bool,
    ctx: Any,
    timeout: float | None,
    rep: Reporter,
    guard: FailureGuard,
    pending: Pending | None = None,
) -> None:
    """Trials in this process: one at a time through ``study.optimize``, or in packs (``pending``:
    :class:`~tunelab.tune.execution.packs.Pending`, the batch's groups still to start)."""
    study, objectives, writer = p.study, p.objectives, p.writer
    objective = Objective(
        p.space, objectives, p.study_dir, data=p.cache, callbacks=callbacks, prune=prune, trial_context=ctx
    )

    def told(study: optuna.Study, trials: list[FrozenTrial]) -> bool:
        writer.refresh(study, objectives)  # once for the trials told together (a pack)
        seen = snapshot(study) if len(trials) > 1 else study  # one read for the pack's lines
        for trial in trials:
            rep.trial(seen, trial)
        return guard(*trials)

    from tunelab.tune.execution.signals import tell_gate

    if p.pack_size != 1:
        from tunelab.tune.execution.packs import run_packs

        device = str(p.space.base.get("device", "auto"))
        with tell_gate():  # keeps an interrupt out of storage calls, and of asks and tells (signals.held)
            run_packs(study, objective, p.pack_size, p.n_trials, timeout, told, device=device, pending=pending)
        return

    with tell_gate() as gate:  # an interrupt between trials (Optuna's tell, the next ask) waits for the next trial

        def gated(trial: optuna.Trial) -> Any:
            try:
                if gate is not None:
                    gate.open()  # raises a signal held since the last trial: this one ends interrupted
                return objective(trial)
            except (KeyboardInterrupt, SystemExit):  # also one landing while the trial begins or is recorded
                if TRIAL.REASON not in trial.user_attrs:
                    trial.set_user_attr(TRIAL.REASON, "interrupted")
                raise
            finally:
                if gate is not None:
                    gate.close()

        def after(study: optuna.Study, trial: FrozenTrial) -> None:
            if told(study, [trial]):
                study.stop()

        study.optimize(gated, n_trials=p.n_trials, timeout=timeout, catch=(TrialFailed,), callbacks=[after])


def _run_workers(p: PreparedStudy, job: WorkerJob, rep: Reporter, guard: FailureGuard) -> None:
    from optuna.trial import TrialState

    study = p.study
    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    seen = {t.number for t in study.get_trials(deepcopy=False, states=done)}

    def poll() -> bool:
        new = [t for t in study.get_trials(deepcopy=False, states=done) if t.number not in seen]
        if not new:
            return bool(guard.message)
        p.writer.refresh(study, p.objectives)
        stop = False
        for t in sorted(new, key=lambda t: (t.datetime_complete or t.datetime_start, t.number)):  # type: ignore[arg-type, return-value]
            seen.add(t.number)
            rep.trial(study, t)
            stop = guard(t) or stop
        return stop or bool(guard.message)

    run_workers(job, p.opts.workers, p.n_trials, poll)
