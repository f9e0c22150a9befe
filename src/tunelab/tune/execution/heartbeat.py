"""Heartbeats for storages that have none (journal file, Redis journal).

Optuna's RDBStorage beats a heartbeat for every running trial and, before each new trial, fails
the trials whose heartbeat went stale and re-queues them (``RetryHeartbeatStaleTrialCallback``).
Journal storages lack that, so a killed worker would leave its trial RUNNING for ever.  This
module gives them the same rule: a thread stamps ``tunelab:heartbeat`` on the running trial every
``interval`` seconds, and :func:`reap_stale` (run before each trial and when a study is opened)
fails trials whose stamp is older than ``grace`` and re-queues them, ``max_retry`` times at most.
Because it works through the public storage API, it also covers trials driven by ask/tell.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

__all__ = ["HEARTBEAT_ATTR", "beating", "reap_stale"]

log = logging.getLogger(__name__)
HEARTBEAT_ATTR = "tunelab:heartbeat"


@contextmanager
def beating(study: optuna.Study, trial_id: int, interval: float) -> Iterator[None]:
    """Stamp the trial's heartbeat every ``interval`` seconds while the block runs."""
    storage = study._storage
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
            except Exception:  # the trial finished meanwhile, or the storage blipped: try next time
                log.debug("heartbeat of trial id %s not written", trial_id, exc_info=True)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name=f"tunelab-heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def reap_stale(
    study: optuna.Study, grace: float, max_retry: int | None, *, now: float | None = None, skip: int | None = None
) -> list[int]:
    """Fail RUNNING trials whose heartbeat is older than ``grace`` s and re-queue each.

    Returns the numbers of the trials it failed (never ``skip``, the caller's own trial id).  Safe to run from several workers at once: the
    storage refuses a second state change, and only the worker that made it re-queues.
    """
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    now = time.time() if now is None else now
    storage = study._storage
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t._trial_id == skip:
            continue
        started = t.datetime_start.timestamp() if t.datetime_start else now
        stamp = max(float(t.system_attrs.get(HEARTBEAT_ATTR, started)), started)  # a retry inherits the old stamp
        if now - float(stamp) <= grace:
            continue
        try:
            if not storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker got there first
        log.warning(
            "trial %d lost its worker (no heartbeat for %.0fs); failing it and queueing a retry",
            t.number,
            now - float(stamp),
        )
        failed.append(t.number)
        retry(study, storage.get_trial(t._trial_id))
    return failed
